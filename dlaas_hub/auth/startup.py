"""Start-up checks of DLaaSAuthenticator: a misconfiguration stops the hub, naming its setting."""

from __future__ import annotations

import gc
import os

from jupyterhub import orm, scopes
from jupyterhub.crypto import KEY_ENV, CryptKeeper, _validate_key

from ..errors import ConfigError
from ..hubapi.scopes import TOKENS_SCOPE
from ..tokens.exchange import eos_refusal
from .discovery import issuer_problem


def check_settings(authenticator) -> None:
    """The settings without which no login can work, and the auth_state encryption key."""
    if not authenticator.oidc_issuer:
        raise ConfigError("DLaaSAuthenticator.oidc_issuer is not set: give the provider's issuer URL, "
                          "for example https://iam-escape.cloud.cnaf.infn.it/")
    problem = issuer_problem(authenticator.oidc_issuer)
    if problem:
        raise ConfigError(f"DLaaSAuthenticator.oidc_issuer {problem}")
    if not authenticator.client_id:
        raise ConfigError("DLaaSAuthenticator.client_id is not set: register a client at the provider")
    if not authenticator.client_secret:
        raise ConfigError("DLaaSAuthenticator.client_secret is not set")
    if not authenticator.enable_auth_state:
        raise ConfigError("DLaaSAuthenticator.enable_auth_state must stay True: the exchanged tokens "
                          "and refresh token live in encrypted auth_state")
    configured = authenticator.config.get("CryptKeeper", {}).get("keys")
    for where, keys in ((KEY_ENV, os.environ.get(KEY_ENV)), ("CryptKeeper.keys", configured)):
        problem = crypt_key_problem(keys) if keys else None
        if problem:
            raise ConfigError(f"{where}: {problem}")
    if not crypt_key_configured(authenticator.config):
        raise ConfigError(
            f"{KEY_ENV} is not set: DLaaSAuthenticator keeps tokens in encrypted auth_state and the hub "
            f"refuses to start without a key. Make one with `openssl rand -hex 32` and pass it to the hub "
            f"as {KEY_ENV} (on Zero-to-JupyterHub: hub.config.CryptKeeper.keys, or a Secret)."
        )


def warn_eos_refusal(authenticator) -> None:
    """Say at start when the EOS server will refuse every EOS token (the hub still runs: a storage
    that verifies the JWT itself, like XRootD with SciTokens, takes it)."""
    name = next((authenticator.config[cls]["eos_target"] for cls in ("DLaaSKubeSpawner", "DLaaSLocalSpawner")
                 if "eos_target" in authenticator.config.get(cls, {})), "eos")
    target = next((t for t in authenticator.targets if t.name == name), None)
    why = eos_refusal(target) if target else None
    if why:
        authenticator.log.warning("DLaaSAuthenticator.exchange_targets[%r].scope: %s", name, why)


def crypt_key_problem(keys) -> str | None:
    """Why JupyterHub would refuse these auth_state keys, never showing a key; None when it takes them.

    ``keys`` as the hub reads them: a list (``CryptKeeper.keys``) or a ;-separated string
    (the environment variable).
    """
    if isinstance(keys, str):
        keys = [k for k in keys.split(";") if k.strip()]
    if not isinstance(keys, (list, tuple)):
        return f"a {type(keys).__name__} where a list of keys is expected (YAML: keys: [\"<64 hex digits>\"])"
    for number, key in enumerate(keys, 1):
        try:
            _validate_key(key)
        except (ValueError, TypeError, UnicodeError):
            size = f"{len(key)} characters" if isinstance(key, (str, bytes)) else f"a {type(key).__name__}"
            which = f"key {number} of {len(keys)}" if len(keys) > 1 else "the key"
            return (f"{which} is {size}, which JupyterHub refuses: a key is 32 bytes, written as 64 hex digits "
                    "(make one with `openssl rand -hex 32`) or 44 base64 characters")
    return None


def crypt_key_configured(config) -> bool:
    if os.environ.get(KEY_ENV):
        return True
    if CryptKeeper.initialized() and CryptKeeper.instance().keys:
        return True
    return bool(config.get("CryptKeeper", {}).get("keys"))


def define_tokens_scope() -> None:
    """The hub's roles may only name defined scopes: define ours before JupyterHub loads them."""
    if TOKENS_SCOPE not in scopes.scope_definitions:
        scopes.define_custom_scopes({TOKENS_SCOPE: {
            "description": "Read your own data-lake credential files (audience-restricted tokens).",
        }})


def check_tokens_role(app) -> None:
    """With a DLaaS spawner, the 'user' role must hold the scope the token agents need."""
    spawner_class = getattr(app, "spawner_class", None)
    if app is None or not hasattr(spawner_class, "credential_bundle") or not hasattr(app, "db"):
        return
    role = orm.Role.find(app.db, "user")
    if role is not None and not any(s.split("!")[0] == TOKENS_SCOPE for s in role.scopes):
        raise ConfigError(
            f"JupyterHub.load_roles: the 'user' role must hold '{TOKENS_SCOPE}!user' so that each server's "
            f"token agent may fetch its credentials. Add: c.JupyterHub.load_roles = "
            f"[{{'name': 'user', 'scopes': ['self', '{TOKENS_SCOPE}!user']}}]"
        )


def freeze_startup_heap(log) -> None:
    """Put what the hub holds once configured (modules, classes, configuration, database mappings)
    out of the cyclic garbage collector's reach, once per process.

    A full collection walks every tracked object while the event loop waits: on a hub with a few
    hundred users signed in, 0.3 to 0.7 s at a time, several times during a renewal storm. Most of
    those objects live as long as the process, so walking them frees nothing.
    """
    if gc.get_freeze_count():
        return
    gc.collect()
    gc.freeze()
    log.info("Start-up heap frozen: full garbage collections skip its %d objects", gc.get_freeze_count())


def runs_in_hub(parent) -> bool:
    """Whether this authenticator was configured by a JupyterHub application (not a test, a tool)."""
    from jupyterhub.app import JupyterHub

    return isinstance(parent, JupyterHub)
