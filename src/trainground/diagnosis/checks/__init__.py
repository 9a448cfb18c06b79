"""Built-in checks, one module per check; importing this package registers them all."""
