"""Built-in repair policies, one module each; importing this package registers them."""
