"""Reference recipes built from the library's public pieces."""
