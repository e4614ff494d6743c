"""What the hub serves beyond JupyterHub: the credentials endpoint, the token page and its JSON, the
custom scope that guards them, and the metrics."""
