"""The JupyterHub custom scope that guards a server's credential files."""

#: Granted to each server's API token (for its own user): lets its token agent fetch its files.
TOKENS_SCOPE = "custom:dlaas:tokens"
