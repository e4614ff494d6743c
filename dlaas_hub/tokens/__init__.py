"""The token lifecycle without JupyterHub: the provider's HTTP client, RFC 8693 exchange, renewal,
reading JWTs, and what a user may know of their tokens."""
