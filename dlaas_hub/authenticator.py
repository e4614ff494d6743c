"""``dlaas_hub.authenticator``, as the docs and the shipped values name it: the authenticator lives in
:mod:`dlaas_hub.auth.authenticator`."""

from .auth.authenticator import AUTH_STATE_VERSION, ConfigError, DLaaSAuthenticator

__all__ = ["AUTH_STATE_VERSION", "ConfigError", "DLaaSAuthenticator"]
