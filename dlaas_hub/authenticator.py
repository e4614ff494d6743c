"""DLaaSAuthenticator: INDIGO IAM login, verified identity and groups, tokens for the data lake."""

from __future__ import annotations

import asyncio
import os
import re
import time
from contextvars import ContextVar

from jupyterhub.crypto import KEY_ENV, CryptKeeper
from jupyterhub.traitlets import Callable
from oauthenticator.generic import GenericOAuthenticator
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Any, Bool, CaselessStrEnum, Dict, Float, Integer, List, Unicode, Union, default, validate

from . import logscrub, metrics
from .discovery import ProviderMetadata
from .errors import ConfigError, login_error, user_error
from .exchange import ExchangedToken, ExchangeTarget, exchange_all
from .handlers import (
    DLaaSCallbackHandler,
    DLaaSLoginHandler,
    DLaaSLogoutHandler,
    ExchangesFirst,
    PendingExchanges,
    SwitchAccountHandler,
    login_nonce,
)
from .http import IAMError, make_client, request_json
from .identity import DEFAULT_USERNAME_PATTERN, Subject, bound_subject, name_matches, name_rule, shown
from .idtoken import SAFE_ALGORITHMS, IDTokenError, JWKSCache, verify_id_token
from .renewal import LoginExpired, Renewer
from .signout import end_session_url, login_url_beside, revoke_token
from .tokens import jwt_expiry, subject_mismatch

#: Version of the auth_state layout documented in docs/reference/auth-state.md.
AUTH_STATE_VERSION = 1

#: The nonce the login being completed in this task was sent with ("" when it has none).
_expected_nonce: ContextVar[str] = ContextVar("dlaas_expected_nonce", default="")

# JWT bookkeeping claims of the id_token that say nothing about the user.
_REGISTERED_CLAIMS = {"iss", "aud", "exp", "iat", "nbf", "jti", "nonce", "at_hash", "c_hash", "azp",
                      "auth_time", "sid"}


class DLaaSAuthenticator(GenericOAuthenticator):
    """Log in with an INDIGO IAM (or any OpenID provider with RFC 8693 token exchange).

    Verifies the id_token against the provider's JWKS, reads the user's groups, and exchanges the
    user's access token for one audience-restricted token per :attr:`exchange_targets`, all kept in
    encrypted ``auth_state``.
    """

    login_handler = DLaaSLoginHandler
    callback_handler = DLaaSCallbackHandler
    logout_handler = DLaaSLogoutHandler

    oidc_issuer = Unicode(
        config=True,
        help="""The provider's issuer URL, for example ``https://iam-escape.cloud.cnaf.infn.it/``.

        The authorization, token, userinfo and JWKS endpoints are read from
        ``<issuer>/.well-known/openid-configuration`` at the first login (never blocking start-up);
        ``authorize_url``, ``token_url``, ``userdata_url`` and :attr:`jwks_url` override them when set.
        The id_token's ``iss`` must match this value, compared modulo a trailing slash.
        """,
    )
    jwks_url = Unicode(
        config=True,
        help="The provider's JWKS URL. Defaults to the ``jwks_uri`` of the provider's discovery document.",
    )
    discovery_retries = Integer(
        3,
        config=True,
        help="How many times a failed discovery or JWKS request is retried (with jittered backoff) before "
             "the login fails with a 'try again later' page.",
    )
    http_timeout = Float(
        10.0,
        config=True,
        help="Timeout in seconds of each request to the provider (connecting is capped at 5 s).",
    )
    id_token_algorithms = List(
        Unicode(),
        default_value=["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"],
        config=True,
        help="Signature algorithms accepted on id_tokens. Only asymmetric algorithms may be listed: "
             "``none`` and HMAC (HS256...) are refused at start-up.",
    )
    id_token_leeway = Float(
        60.0,
        config=True,
        help="Clock skew in seconds tolerated when checking the id_token's ``exp``, ``iat`` and ``nbf``.",
    )
    groups_claim = Union(
        [Unicode(), Callable()],
        default_value="wlcg.groups",
        config=True,
        help="""The claim that lists the user's groups: ``wlcg.groups`` (paths such as ``/escape/ska``;
        request the ``wlcg.groups`` scope) or ``groups`` (IAM's names such as ``escape/ska``).
        May be a callable taking the user's claims and returning a list of group names.
        The groups feed ``allowed_groups``, ``admin_groups`` and the hub's managed groups.
        """,
    )
    fetch_userinfo = CaselessStrEnum(
        ["when_claims_missing", "always"],
        default_value="when_claims_missing",
        config=True,
        help="""When a login also asks the provider's userinfo endpoint for the user's claims.

        ``when_claims_missing`` (the default): only when the verified id_token lacks a claim the hub
        reads: :attr:`username_claim`, :attr:`groups_claim`, :attr:`extra_claims` and the spawner's
        ``rucio_account`` claim. INDIGO IAM puts them in the id_token, so a login makes no userinfo
        request. Nothing is lost: the id_token comes from the same code exchange as a userinfo answer
        would, and its signature is checked.

        ``always``: every login reads userinfo too, and its answer completes and overrides the
        id_token's claims; for providers whose id_token carries only part of a claim, or when a
        ``username_claim`` or ``groups_claim`` callable reads claims the hub cannot name (a callable
        always leads to the userinfo request). ``userdata_from_id_token = True`` never asks userinfo.
        """,
    )
    extra_claims = List(
        Unicode(),
        config=True,
        help="""Claims the hub's configuration reads from a login besides the user name and the groups,
        for example in a ``modify_auth_state_hook``. When the verified id_token lacks one of them, the
        login asks the userinfo endpoint for it (see :attr:`fetch_userinfo`). The spawner's
        ``rucio_account`` claim is added by itself.""",
    )
    exchange_targets = Dict(
        config=True,
        help="""The storage services to obtain tokens for, by RFC 8693 token exchange at login. Example::

            c.DLaaSAuthenticator.exchange_targets = {
                "eos": {"audience": "eos-eulake", "scope": "openid profile wlcg.groups"},
                "rucio": {"audience": "rucio", "scope": "openid profile", "required": False},
            }

        ``audience`` and ``scope`` are mandatory (IAM refuses an exchange without a scope, and
        ``offline_access`` in one). All targets are exchanged concurrently right after the code
        exchange. If a ``required`` target (the default) fails, the login is refused with a page
        naming the target; a failed optional target is recorded in auth_state and the login goes on.
        """,
    )
    exchange_retries = Integer(
        1,
        config=True,
        help="How many times an exchange that failed transiently (timeout, 5xx) is retried during login.",
    )

    refresh_margin = Float(
        300.0,
        config=True,
        help="""Renew a token this many seconds before its ``exp`` (at most half its lifetime, so that
        short-lived tokens are renewed in their second half). Renewal happens when the hub is asked
        for the user's credentials (by a server's token agent, at spawn, or on the user's requests
        every ``auth_refresh_age``); when nothing is due, no request is made to the provider.""",
    )
    refresh_backoff = Float(
        5.0,
        config=True,
        help="First pause, in seconds, after a failed renewal; it doubles (with jitter) up to 5 minutes.",
    )

    subject_rebinds = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help="""Hub accounts to bind anew, on purpose, to another IAM subject: ``{hub name: new sub}``.

        Each hub account is bound to the ``sub`` (and issuer) of its first login; a later login whose
        ``sub`` differs is refused, because a provider's user name may fold onto another user's hub
        name (``ALICE`` and ``alice``). When a person's IAM account was re-created (new ``sub``, same
        name), or the hub moves to another IAM, list the account here with the ``sub`` the refusal
        logged; the next login by that subject re-binds the account, keeping its servers and files.
        Remove the entry afterwards. Example::

            c.DLaaSAuthenticator.subject_rebinds = {"alice": "8a4c2f1e-7b3d-4e59-9c21-0f6d5a8b3e71"}
        """,
    )

    end_provider_session = Union(
        [Bool(), Unicode()],
        default_value=True,
        config=True,
        help="""Whether signing out of the hub also ends the user's session at the provider
        (OpenID Connect RP-Initiated Logout), so that the next "Sign in" on the same browser asks for
        a password again: on a shared lab machine, the next person never gets the previous one's account.

        ``True`` (the default): when the provider's discovery document advertises an
        ``end_session_endpoint``, the hub's logout ends with a redirect there carrying
        ``id_token_hint`` (from the encrypted auth_state), ``client_id`` and
        ``post_logout_redirect_uri`` (:attr:`post_logout_redirect_url`). A URL: that endpoint, whatever
        discovery says. ``False``: the provider's session is left alone. oauthenticator's
        ``logout_redirect_url``, when set, takes precedence over this.
        """,
    )
    post_logout_redirect_url = Unicode(
        config=True,
        help="""Where the provider sends the browser after ending its session. Defaults to the hub's
        login page next to ``oauth_callback_url`` (``https://hub.example/hub/login``). Register it with
        the provider's client as a post-logout redirect URI (INDIGO IAM: the client's "Post logout
        redirect URIs").""",
    )
    revoke_on_logout = Bool(
        True,
        config=True,
        help="""Revoke the user's refresh token at the provider's ``revocation_endpoint`` (RFC 7009,
        when discovery advertises one) when they sign out of the hub, so that a signed-out session
        leaves no live grant behind. Servers still running keep the exchanged tokens they hold until
        those expire (EOS: 20 minutes, Rucio: an hour at IAM's defaults); renewing them then needs a
        new sign-in.""",
    )

    iam_client = Any(help="The pooled httpx.AsyncClient used for every request to the provider.")

    @default("iam_client")
    def _iam_client_default(self):
        return make_client(timeout=self.http_timeout, verify=self.validate_server_cert)

    @default("login_service")
    def _login_service_default(self):
        return os.environ.get("LOGIN_SERVICE", "INDIGO IAM")

    @default("username_claim")
    def _username_claim_default(self):
        return "preferred_username"

    @default("scope")
    def _scope_default(self):
        return ["openid", "profile", "email", "offline_access", "wlcg.groups"]

    @default("basic_auth")
    def _basic_auth_default(self):
        # IAM clients authenticate with client_secret_basic unless registered otherwise.
        return True

    @default("manage_groups")
    def _manage_groups_default(self):
        return True

    @default("enable_auth_state")
    def _enable_auth_state_default(self):
        return True

    @default("username_pattern")
    def _username_pattern_default(self):
        # Hub names end up in paths, pod names and config files: keep them to a safe alphabet.
        return DEFAULT_USERNAME_PATTERN

    @validate("username_pattern")
    def _check_username_pattern(self, proposal):
        try:
            re.compile(proposal.value)
        except re.error as e:
            raise ConfigError(f"DLaaSAuthenticator.username_pattern is not a valid regular expression: {e}") from None
        return proposal.value

    @default("auth_state_groups_key")
    def _auth_state_groups_key_default(self):
        return self.groups_from_auth_state

    @default("custom_403_message")
    def _custom_403_message_default(self):
        return ("Your account is not in a group that may use this hub. Ask your experiment's IAM "
                "administrator to add you to one, then sign in again.")

    @validate("id_token_algorithms")
    def _check_algorithms(self, proposal):
        unsafe = [a for a in proposal.value if a not in SAFE_ALGORITHMS]
        if unsafe or not proposal.value:
            raise ConfigError(
                f"DLaaSAuthenticator.id_token_algorithms: {unsafe or 'an empty list'} not allowed; "
                f"use asymmetric algorithms among {sorted(SAFE_ALGORITHMS)}"
            )
        return proposal.value

    @validate("end_provider_session", "post_logout_redirect_url")
    def _check_logout_urls(self, proposal):
        value = proposal.value
        if isinstance(value, str) and value and not re.match(r"^https?://[^\s/]+\S*$", value):
            raise ConfigError(f"DLaaSAuthenticator.{proposal.trait.name} must be an http(s) URL (or "
                              f"{'True or False' if proposal.trait.name == 'end_provider_session' else 'empty'}), "
                              f"not {value!r}")
        return value

    @validate("exchange_targets")
    def _check_exchange_targets(self, proposal):
        for name, config in proposal.value.items():
            try:
                ExchangeTarget.from_config(name, config, key="DLaaSAuthenticator.exchange_targets")
            except ValueError as e:
                raise ConfigError(str(e)) from None
        return proposal.value

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        logscrub.install(self.log)
        if self.parent is not None:
            self._add_templates(self.parent)
        self._check_config()
        self._define_tokens_scope()
        self._metadata = ProviderMetadata(self.iam_client, self.oidc_issuer, retries=self.discovery_retries)
        self._jwks: JWKSCache | None = None
        self._prefetch_task = None
        self._spawner_claims: set[str] = set()
        if self.has_trait("reconcile_auth_state_hook"):  # JupyterHub 6.1 and later
            self.observe(self._exchanges_first, names="reconcile_auth_state_hook")
            self._exchanges_first({"new": self.reconcile_auth_state_hook})
        self.renewer = Renewer(refresh=self._refresh_grant, exchange=self._exchange_some,
                               targets=lambda: self.targets, margin=self.refresh_margin, log=self.log,
                               backoff_base=self.refresh_backoff, on_fresh=metrics.RENEWALS_SKIPPED.inc,
                               subject=self.account_subject)

    def _exchanges_first(self, change):
        # The login's exchanges finish in JupyterHub's reconcile hook; an operator's hook runs after.
        if not isinstance(change["new"], ExchangesFirst):
            self.reconcile_auth_state_hook = ExchangesFirst(change["new"])

    @property
    def targets(self) -> list[ExchangeTarget]:
        return [ExchangeTarget.from_config(n, c) for n, c in self.exchange_targets.items()]

    def _check_config(self):
        if not self.oidc_issuer:
            raise ConfigError("DLaaSAuthenticator.oidc_issuer is not set: give the provider's issuer URL, "
                              "for example https://iam-escape.cloud.cnaf.infn.it/")
        if not self.client_id:
            raise ConfigError("DLaaSAuthenticator.client_id is not set: register a client at the provider")
        if not self.client_secret:
            raise ConfigError("DLaaSAuthenticator.client_secret is not set")
        if not self.enable_auth_state:
            raise ConfigError("DLaaSAuthenticator.enable_auth_state must stay True: the exchanged tokens "
                              "and refresh token live in encrypted auth_state")
        if not self._crypt_key_configured():
            raise ConfigError(
                f"{KEY_ENV} is not set: DLaaSAuthenticator keeps tokens in encrypted auth_state and the hub "
                f"refuses to start without a key. Make one with `openssl rand -hex 32` and pass it to the hub "
                f"as {KEY_ENV} (on Zero-to-JupyterHub: hub.config.CryptKeeper.keys, or a Secret)."
            )

    def _crypt_key_configured(self) -> bool:
        if os.environ.get(KEY_ENV):
            return True
        if CryptKeeper.initialized() and CryptKeeper.instance().keys:
            return True
        return bool(self.config.get("CryptKeeper", {}).get("keys"))

    # -- provider endpoints -------------------------------------------------------------------

    def _define_tokens_scope(self):
        # The hub's roles may only name defined scopes; define ours before JupyterHub loads them.
        from jupyterhub import scopes

        from .spawners.mixin import TOKENS_SCOPE

        if TOKENS_SCOPE not in scopes.scope_definitions:
            scopes.define_custom_scopes({TOKENS_SCOPE: {
                "description": "Read your own data-lake credential files (audience-restricted tokens).",
            }})

    def _check_tokens_role(self, app):
        """With a DLaaS spawner, the 'user' role must hold the scope the token agents need."""
        from jupyterhub import orm

        from .spawners.mixin import TOKENS_SCOPE

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

    def check_allow_config(self):
        super().check_allow_config()
        logscrub.install(self.log)  # again: the hub may have set up its handlers since __init__
        self._check_tokens_role(self.parent)
        from .spawners.mixin import check_spawner_config

        if self.parent is not None:
            spawner = check_spawner_config(self.parent)
            self._spawner_claims = spawner.claims_read() if spawner is not None else set()
        # Warm the discovery and JWKS caches in the background: start-up never waits for the
        # provider, and a provider that is down now is retried at the first login.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._prefetch_task = loop.create_task(self._prefetch())

    async def _prefetch(self):
        try:
            await self.resolve_endpoints()
            await self._jwks.get("")  # fetches the key set; the empty kid itself is never found
        except IDTokenError:
            pass
        except IAMError as e:
            self.log.warning("Identity provider %s not reachable at start-up (%s); will retry at the first login",
                             self.oidc_issuer, e.reason)

    async def resolve_endpoints(self):
        """Fill the endpoints not set explicitly from the provider's discovery document."""
        if self._jwks is not None and self.authorize_url and self.token_url:
            return
        metadata = await self._metadata.get()
        if not self.authorize_url:
            self.authorize_url = metadata["authorization_endpoint"]
        if not self.token_url:
            self.token_url = metadata["token_endpoint"]
        if not self.userdata_url and not self.userdata_from_id_token and metadata.get("userinfo_endpoint"):
            self.userdata_url = metadata["userinfo_endpoint"]
        if self._jwks is None:
            self._jwks = JWKSCache(self.iam_client, self.jwks_url or metadata["jwks_uri"],
                                   retries=self.discovery_retries)

    @property
    def userinfo_endpoint(self) -> str | None:
        """The provider's userinfo URL (the EOS token file names it as the token's resource)."""
        return self.userdata_url or (self._metadata.cached or {}).get("userinfo_endpoint")

    # -- login ----------------------------------------------------------------------------------

    def _client_auth(self):
        return (self.client_id, self.client_secret) if self.basic_auth else None

    def _client_params(self):
        return {} if self.basic_auth else {"client_id": self.client_id, "client_secret": self.client_secret}

    async def _token_request(self, params: dict) -> dict:
        """POST to the token endpoint through the pooled client; raises IAMError."""
        data = {k: v for k, v in params.items() if v is not None and k != "data"}
        label = f"token request ({data.get('grant_type', 'unknown grant')})"
        await self.resolve_endpoints()
        token_info = await request_json(self.iam_client, "POST", self.token_url, label=label,
                                        data=data, auth=self._client_auth())
        if not isinstance(token_info.get("access_token"), str) or not token_info["access_token"]:
            raise IAMError(label, "the provider's answer holds no access_token")
        token_info.setdefault("token_type", "Bearer")
        return token_info

    async def get_token_info(self, handler, params):
        """The code exchange; errors become readable pages."""
        try:
            return await self._token_request(params)
        except IAMError as e:
            self.log.warning("Login failed: %s", e)
            raise login_error(e, issuer=self.oidc_issuer) from None

    async def verify_id_token(self, id_token: str, *, nonce: str | None = None,
                              access_token: str | None = None) -> dict:
        """The id_token's claims, once its signature, issuer, audience and expiry are checked.

        A login's id_token is also bound to the login: its ``nonce`` must be the one this browser's
        authorization request carried, and its ``at_hash`` (when present) the access token's.
        """
        await self.resolve_endpoints()
        return await verify_id_token(
            id_token, jwks=self._jwks, issuer=self.oidc_issuer, audience=self.client_id,
            algorithms=self.id_token_algorithms, leeway=self.id_token_leeway,
            nonce=nonce, access_token=access_token,
        )

    async def token_to_user(self, token_info):
        """The user's claims: the login's verified id_token, completed by the userinfo endpoint."""
        try:
            nonce = _expected_nonce.get()
            if not nonce:
                raise IDTokenError("this login's state holds no nonce (sign-in not started at this hub?)")
            claims = await self.verify_id_token(token_info.get("id_token"), nonce=nonce,
                                                access_token=token_info["access_token"])
        except IDTokenError as e:
            self.log.warning("Login refused: %s", e)
            raise login_error(IAMError("id_token check", str(e)), issuer=self.oidc_issuer,
                              status=403) from None
        except IAMError as e:
            self.log.warning("Login failed: %s", e)
            raise login_error(e, issuer=self.oidc_issuer) from None
        mismatch = subject_mismatch(token_info["access_token"], claims["sub"], self.oidc_issuer)
        if mismatch:
            e = IAMError("code exchange", f"the access token does not belong to the id_token: {mismatch}")
            self.log.warning("Login refused: %s", e)
            raise login_error(e, issuer=self.oidc_issuer, status=403)
        user_info = {k: v for k, v in claims.items() if k not in _REGISTERED_CLAIMS}
        if self.userdata_from_id_token or not self.userdata_url or not self.userinfo_needed(user_info):
            return user_info
        try:
            userinfo = await request_json(
                self.iam_client, "GET", self.userdata_url, label="userinfo", retries=1,
                headers={"Authorization": f"Bearer {token_info['access_token']}"},
            )
        except IAMError as e:
            self.log.warning("Login failed: %s", e)
            raise login_error(e, issuer=self.oidc_issuer) from None
        if userinfo.get("sub") != claims["sub"]:
            e = IAMError("userinfo", "the userinfo answer is about another subject than the id_token")
            self.log.warning("Login refused: %s", e)
            raise login_error(e, issuer=self.oidc_issuer, status=403)
        user_info.update(userinfo)
        return user_info

    def claims_needed(self) -> set[str] | None:
        """The claims a login must carry, or None when a callable reads claims the hub cannot name."""
        if callable(self.username_claim) or callable(self.groups_claim):
            return None
        return {self.username_claim, self.groups_claim, *self.extra_claims, *self._spawner_claims}

    def userinfo_needed(self, claims: dict) -> bool:
        """Whether the verified id_token's claims must be completed by the userinfo endpoint."""
        if self.fetch_userinfo == "always":
            return True
        needed = self.claims_needed()
        return needed is None or not needed <= claims.keys()

    # -- names and subjects -----------------------------------------------------------------------

    def validate_username(self, username) -> bool:
        """The name must match :attr:`username_pattern` in full, whoever creates the account.

        JupyterHub compiles ``username_pattern`` only when it changes, so a default pattern would
        never be enforced; and a bare ``$`` also accepts a trailing newline.
        """
        return name_matches(self.username_pattern, username) and super().validate_username(username)

    def user_info_to_username(self, user_info):
        name = (self.username_claim(user_info) if callable(self.username_claim)
                else user_info.get(self.username_claim))
        if not isinstance(name, str) or not name:
            claim = self.username_claim if isinstance(self.username_claim, str) else "username_claim"
            self.log.warning("Login refused: the provider gave no user name (claim %s) for subject %s",
                             claim, shown(user_info.get("sub")))
            raise self._refusal(
                f"Your identity provider account has no user name (claim '{claim}'), so no hub account "
                "can be made for it. Ask your IAM administrator to check your account.", outcome="name_refused")
        if not name.isascii():
            # Case folding maps some non-ASCII letters onto ASCII ones (the Kelvin sign onto k):
            # such a name could claim another person's hub name before they first sign in.
            self._refuse_name(name)
        return name

    def _refusal(self, message: str, status: int = 403, outcome: str = "refused") -> web.HTTPError:
        exc = user_error(status, message)
        exc.dlaas_outcome = outcome
        return exc

    def check_username(self, name) -> None:
        """Refuse, with a page saying why, a name that :attr:`username_pattern` does not accept."""
        if not self.validate_username(name):
            self._refuse_name(name)

    def _refuse_name(self, name):
        self.log.warning("Login refused: the user name %s is not acceptable (ASCII only, and "
                         "DLaaSAuthenticator.username_pattern)", shown(name))
        raise self._refusal(
            f"Your IAM user name {shown(name)} is not acceptable as a hub user name (allowed: "
            f"{name_rule(self.username_pattern)}). Ask your hub administrator for help.", outcome="name_refused")

    def account_subject(self, auth_state: dict | None) -> Subject | None:
        """The IAM subject an auth_state's account is bound to (None when it records none)."""
        return bound_subject(auth_state, issuer=self.oidc_issuer, claims_key=self.user_auth_state_key)

    def login_subject(self, auth_state: dict) -> Subject:
        claims = auth_state.get(self.user_auth_state_key) or {}
        return Subject(claims["sub"], self.oidc_issuer)

    async def stored_auth_state(self, handler, name: str):
        """(whether the account exists, whether it has auth_state, its readable auth_state).

        The account is looked up through the handler: :class:`DLaaSCallbackHandler` keeps it for
        JupyterHub's own bookkeeping later in the same login, so the login loads it once.
        """
        find_user = getattr(handler, "find_user", None)
        user = find_user(name) if find_user is not None else None
        if user is None:
            return False, False, None
        stored = getattr(user, "encrypted_auth_state", None) is not None
        return True, stored, await user.get_auth_state()  # None when it cannot be decrypted

    async def check_subject(self, handler, auth_model: dict) -> None:
        """Bind the account to this login's subject, or refuse a login by another subject."""
        name, auth_state = auth_model["name"], auth_model["auth_state"]
        subject = self.login_subject(auth_state)
        exists, stored, previous = await self.stored_auth_state(handler, name)
        bound = self.account_subject(previous)
        if bound is None and stored:
            why = "its stored auth_state cannot be read (was JUPYTERHUB_CRYPT_KEY changed?)"
        elif bound is not None and bound != subject:
            why = f"it is bound to IAM subject {bound}"
        else:
            why = None
        if why and self.subject_rebinds.get(name) == subject.sub:
            self.log.warning("Hub account %s re-bound to IAM subject %s, as DLaaSAuthenticator.subject_rebinds "
                             "says (%s); remove the entry now", shown(name), subject, why)
        elif why:
            self.log.warning(
                "Login refused: hub account %s is not for IAM subject %s: %s. If this person should have "
                "the account, set DLaaSAuthenticator.subject_rebinds = {%s: %s}",
                shown(name), subject, why, shown(name), shown(subject.sub, 80))
            raise self._refusal(
                "This hub account belongs to another identity at the identity provider, so you cannot "
                "sign in to it. If it is yours (for example after your IAM account was re-created), ask "
                "your hub administrator to move it to your new identity.", outcome="subject_mismatch")
        elif not exists:
            self.log.info("New hub account %s bound to IAM subject %s", shown(name), subject)
        auth_state["subject"] = subject.to_state()

    def groups_from_auth_state(self, auth_state: dict) -> list[str]:
        """The user's groups, read from :attr:`groups_claim` of their claims."""
        claims = auth_state.get(self.user_auth_state_key) or {}
        groups = self.groups_claim(claims) if callable(self.groups_claim) else claims.get(self.groups_claim)
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list):
            return []
        return [g for g in groups if isinstance(g, str) and g]

    async def build_auth_state_dict(self, token_info, user_info):
        auth_state = super().build_auth_state_dict(token_info, user_info)
        name = user_info.get(self.username_claim) if isinstance(self.username_claim, str) else None
        expires_in = token_info.get("expires_in")
        now = int(time.time())
        expires_at = jwt_expiry(token_info["access_token"]) or (
            int(now + expires_in) if isinstance(expires_in, (int, float)) else None)
        auth_state.update({
            "dlaas_version": AUTH_STATE_VERSION,
            # JupyterHub lower-cases names; the Rucio account is the provider's own spelling.
            "iam_username": name if isinstance(name, str) else self.user_info_to_username(user_info),
            "access_token_expires_at": expires_at,
            "access_token_lifetime": (expires_at - now) if expires_at else None,
            "exchanged": {},
            "exchange_errors": {},
        })
        return auth_state

    async def exchange_tokens(self, subject_token: str, *, sent: asyncio.Event | None = None) -> dict:
        return await self._exchange_some(subject_token, self.targets, sent=sent)

    async def authenticate(self, handler, data=None, **kwargs):
        """Code exchange, then all token exchanges while the user's identity is checked.

        Two provider round trips on the critical path (JWKS and discovery are cached). The
        exchanges go out first; the id_token check, the account's subject, the groups (and the
        userinfo request, when the id_token lacks a claim) run while the provider works on them.
        With :class:`DLaaSCallbackHandler` the login returns before they finish, and JupyterHub's
        own checks and account lookup overlap them too (see :meth:`complete_login`).
        """
        try:
            return await self._authenticate(handler, data)
        except web.HTTPError as e:
            self.count_login(error=e)
            raise
        except Exception:
            self.count_login()
            raise

    def count_login(self, outcome: str | None = None, error: web.HTTPError | None = None) -> None:
        """Count a login in ``dlaas_logins_total`` by its outcome, or by the error page it ended with."""
        if error is not None:
            if getattr(error, "dlaas_counted", False):
                return  # complete_login counted it already
            error.dlaas_counted = True
            if outcome is None:
                outcome = getattr(error, "dlaas_outcome",
                                  "provider_unavailable" if error.status_code == 503 else "refused")
        metrics.LOGINS.labels(outcome or "error").inc()

    async def _authenticate(self, handler, data=None):
        try:
            await self.resolve_endpoints()
        except IAMError as e:
            raise login_error(e, issuer=self.oidc_issuer) from None
        # Read before the code is spent: a login without its nonce is refused below anyway.
        _expected_nonce.set(login_nonce(handler) or "")
        params = self.build_access_tokens_request_params(handler, data)
        token_info = await self.get_token_info(handler, params)
        sent = asyncio.Event()
        exchanges = asyncio.ensure_future(self.exchange_tokens(token_info["access_token"], sent=sent))
        exchanges.add_done_callback(lambda _: sent.set())
        try:
            await sent.wait()
            # oauthenticator's shared path: token_to_user, build_auth_state_dict, the
            # modify_auth_state_hook, update_auth_model and managed groups.
            auth_model = await self._token_to_auth_model(token_info)
            self.check_username(auth_model["name"])
            await self.check_subject(handler, auth_model)
            allowed = await self.check_allowed(auth_model["name"], auth_model)
        except BaseException:
            exchanges.cancel()
            raise
        if not allowed:
            # JupyterHub turns this into the 403 page; the exchanged tokens are dropped.
            exchanges.cancel()
            self.count_login("not_in_group")
            return auth_model
        pending = PendingExchanges(self, exchanges)
        defer = getattr(handler, "defer_exchanges", None)
        if callable(defer):
            defer(pending)
        else:
            await pending.finish(auth_model)
        return auth_model

    async def complete_login(self, auth_model: dict, results: dict) -> None:
        """Store the login's exchange results in its auth_state; refuse it if a required target failed."""
        try:
            self.store_exchange_results(auth_model, results)
        except web.HTTPError as e:
            self.count_login(error=e)
            raise
        self.count_login("accepted")
        self.renewer.forget(auth_model["name"])

    def store_exchange_results(self, auth_model: dict, results: dict) -> None:
        """Record exchanged tokens and failures; refuse the login if a required target failed."""
        auth_state = auth_model["auth_state"]
        subject = self.account_subject(auth_state)
        failed_required = []
        for name, result in results.items():
            if isinstance(result, ExchangedToken):
                self._check_exchanged_subject(auth_model["name"], name, result, subject)
                auth_state["exchanged"][name] = result.to_state()
                continue
            self.log.warning("Token exchange for target %s failed for user %s: %s",
                             name, auth_model["name"], result)
            auth_state["exchange_errors"][name] = {
                "error": result.error or ("temporarily_unavailable" if result.transient else "failed"),
                "reason": result.reason,
                "at": int(time.time()),
            }
            if result.target.required:
                failed_required.append(result)
        if failed_required:
            raise login_error(failed_required[0], issuer=self.oidc_issuer)

    def _check_exchanged_subject(self, name: str, target: str, token: ExchangedToken,
                                 subject: Subject | None) -> None:
        mismatch = ("the login recorded no IAM subject" if subject is None
                    else subject_mismatch(token.access_token, subject.sub, subject.iss))
        if mismatch:
            self.log.warning("Login refused: the %s token exchanged for hub account %s (IAM subject %s) is "
                             "not that subject's: %s", target, shown(name), subject, mismatch)
            raise self._refusal(
                "The identity provider's answers during this sign-in did not all belong to one account, "
                "so the sign-in was stopped. Please sign in again.", outcome="subject_mismatch")

    # -- renewal ----------------------------------------------------------------------------------

    async def _refresh_grant(self, refresh_token: str) -> dict:
        start, result = time.perf_counter(), None
        try:
            token_info = result = await self._token_request(self.build_refresh_token_request_params(refresh_token))
        except IAMError as e:
            result = e
            raise
        finally:
            metrics.observe_token_request("refresh", "iam", result, time.perf_counter() - start)
        if token_info.get("id_token"):
            try:
                await self.verify_id_token(token_info["id_token"])
            except (IDTokenError, IAMError) as e:
                self.log.warning("Ignoring the id_token of a token refresh: %s", e)
                token_info.pop("id_token")
        return token_info

    async def _exchange_some(self, subject_token: str, targets, *, sent: asyncio.Event | None = None) -> dict:
        await self.resolve_endpoints()
        return await exchange_all(
            self.iam_client, self.token_url, subject_token, targets, sent=sent,
            auth=self._client_auth(), client_params=self._client_params(), retries=self.exchange_retries,
            observe=lambda target, result, seconds: metrics.observe_token_request(
                "exchange", target.name, result, seconds),
        )

    async def refresh_credentials(self, user) -> bool:
        """Renew what is near expiry in the user's auth_state (single flight, no I/O when fresh).

        Returns False only when the user has to sign in again (the refresh token was refused);
        through a provider outage the still-valid tokens are kept and True is returned.
        """
        try:
            await self.renewer.renew(user.name, user.get_auth_state, user.save_auth_state)
        except LoginExpired:
            return False
        return True

    async def refresh_user(self, user, handler=None, **kwargs):
        """JupyterHub's periodic check (``auth_refresh_age``, ``refresh_pre_spawn``): renew if due.

        A transient provider failure never logs the user out (on JupyterHub 5.5 a failed refresh of a
        token-authenticated request is a 403, which would break the server's token agent).
        """
        return await self.refresh_credentials(user)

    def get_handlers(self, app):
        from . import statuspages, tokenapi

        return (super().get_handlers(app) + tokenapi.handlers() + statuspages.handlers()
                + [(r"/dlaas/switch-account", SwitchAccountHandler)])

    # -- signing out ------------------------------------------------------------------------------

    def end_session_endpoint(self) -> str | None:
        """The provider's end-session URL that :attr:`end_provider_session` selects, if any."""
        if isinstance(self.end_provider_session, str):
            return self.end_provider_session
        if not self.end_provider_session:
            return None
        endpoint = (self._metadata.cached or {}).get("end_session_endpoint")
        return endpoint if isinstance(endpoint, str) and endpoint.startswith(("https://", "http://")) else None

    def provider_logout_url(self, handler, id_token: str | None = None) -> str | None:
        """Where the browser goes to end its provider session, then comes back to the hub's login."""
        endpoint = self.end_session_endpoint()
        if endpoint is None:
            return None
        back = self.post_logout_redirect_url or login_url_beside(self.get_callback_url(handler))
        return end_session_url(endpoint, client_id=self.client_id, post_logout_redirect_uri=back,
                               id_token_hint=id_token)

    async def sign_out(self, handler, user) -> str | None:
        """Revoke the user's refresh token and return the provider's end-session URL, if any.

        Never raises: a provider that is down does not keep anyone signed in to the hub.
        """
        try:
            await self.resolve_endpoints()
        except IAMError as e:
            self.log.warning("Sign-out of %s: the provider is not reachable (%s)", user.name, e)
        auth_state = await user.get_auth_state() or {}
        await self.revoke_refresh_token(user.name, auth_state.get("refresh_token"))
        self.renewer.forget(user.name)
        return self.provider_logout_url(handler, auth_state.get("id_token"))

    async def revoke_refresh_token(self, name: str, refresh_token) -> bool:
        endpoint = (self._metadata.cached or {}).get("revocation_endpoint")
        if not self.revoke_on_logout or not isinstance(endpoint, str) or not refresh_token:
            return False
        try:
            await revoke_token(self.iam_client, endpoint, refresh_token, auth=self._client_auth(),
                               client_params=self._client_params())
        except IAMError as e:
            self.log.warning("Sign-out of %s: the refresh token could not be revoked (%s)", name, e)
            return False
        self.log.info("Sign-out of %s: refresh token revoked at the provider", name)
        return True

    def _add_templates(self, app):
        """Our pages, and a link to them on the home page, after the operator's own templates."""
        from .statuspages import TEMPLATES

        paths = getattr(app, "template_paths", None)
        if not isinstance(paths, list) or TEMPLATES in paths:
            return
        default = app._template_paths_default()[0] if hasattr(app, "_template_paths_default") else None
        paths.insert(paths.index(default) if default in paths else len(paths), TEMPLATES)

    async def httpfetch(self, url, label="fetching", parse_json=True, raise_error=True, **kwargs):
        """oauthenticator's JSON fetches, routed through the pooled httpx client."""
        if not parse_json:
            return await super().httpfetch(url, label, parse_json, raise_error, **kwargs)
        try:
            return await request_json(self.iam_client, kwargs.get("method", "GET"), url, label=label,
                                      headers=kwargs.get("headers"), content=kwargs.get("body"))
        except IAMError as e:
            if not raise_error:
                return None
            raise HTTPClientError(e.status or 599, message=str(e)) from None
