"""DLaaSAuthenticator: INDIGO IAM login, verified identity and groups, tokens for the data lake."""

from __future__ import annotations

import asyncio
import os

from oauthenticator.generic import GenericOAuthenticator
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Any, Bool, Float, Integer, Unicode, default

from ..errors import ConfigError, login_error
from ..hubapi import credentials, metrics, pages
from ..hubapi.ratelimit import TokenBuckets
from ..spawners.mixin import check_spawner_config
from ..tokens.http import IAMError, request_json
from ..tokens.hubclient import make_client
from ..tokens.limiter import RequestLimiter
from ..tokens.renewal import Renewer
from . import logscrub, startup
from .accounts import AccountBinding
from .claims import LoginClaims, expected_nonce
from .discovery import ProviderMetadata
from .handlers import (
    DLaaSCallbackHandler,
    DLaaSLoginHandler,
    DLaaSLogoutHandler,
    ExchangesFirst,
    PendingExchanges,
    SignInAgainHandler,
    SwitchAccountHandler,
    login_nonce,
)
from .idtoken import IDTokenError, JWKSCache
from .signout import ProviderSignOut
from .tokenstore import AUTH_STATE_VERSION, TokenKeeping

__all__ = ["AUTH_STATE_VERSION", "ConfigError", "DLaaSAuthenticator"]


class DLaaSAuthenticator(LoginClaims, AccountBinding, TokenKeeping, ProviderSignOut, GenericOAuthenticator):
    """Log in with an INDIGO IAM (or any OpenID provider with RFC 8693 token exchange).

    Verifies the id_token against the provider's JWKS, reads the user's groups, and exchanges the
    user's access token for one audience-restricted token per :attr:`exchange_targets`, all kept in
    encrypted ``auth_state``.

    This class holds the login itself; the verified claims (:class:`~dlaas_hub.auth.claims.LoginClaims`),
    account binding (:class:`~dlaas_hub.auth.accounts.AccountBinding`),
    token storage and renewal (:class:`~dlaas_hub.auth.tokenstore.TokenKeeping`), signing out at the
    provider (:class:`~dlaas_hub.auth.signout.ProviderSignOut`) and the start-up checks
    (:mod:`dlaas_hub.auth.startup`) live in modules of their own.
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
    freeze_startup_heap = Bool(
        True,
        config=True,
        help="""Once the hub is configured, move the objects it holds (its modules, configuration and
        database mappings: most of its heap) out of Python's cyclic garbage collector's reach with
        ``gc.freeze()``. A full collection walks every tracked object while the hub's event loop
        waits; with hundreds of users signed in that took 0.3 to 0.7 s at a time, several times in
        a renewal storm, and about a fifth of that once frozen. Frozen objects are never freed,
        which these would not be anyway. Turn it off only to compare.""",
    )
    iam_concurrency_limit = Integer(
        10,
        min=1,
        max=1000,
        config=True,
        help="""At most this many requests (1 to 1000) from the hub to the provider at a time (sign-ins, token
        exchanges, renewals, key and discovery fetches); the others wait in a queue, every sign-in's
        before any renewal's, first come first served. A provider such as an INDIGO IAM serves many
        services: this keeps a workshop's sign-ins and a storm of renewals from flooding it, while
        the queue (``dlaas_iam_queue_length``, ``dlaas_iam_queue_wait_seconds``) shows when the
        bound is too tight. Raise it with the provider's operators' consent; see the docs' page on
        sizing for figures.""",
    )
    credentials_rate = Float(
        1.0,
        min=0.01,
        max=1000.0,
        config=True,
        help="""How many requests per second (sustained) one server's API token may make to the
        credentials endpoint (``/hub/api/dlaas/users/<name>/credentials``), after a burst of
        :attr:`credentials_burst`. A token agent asks every few minutes, and at most once every few
        seconds while its hub is away, so it never meets this bound; a notebook flooding the
        endpoint with the same token gets ``429 Too Many Requests`` with ``Retry-After`` (counted
        in ``dlaas_credentials_served{outcome="rate_limited"}``) before the hub even looks the
        token up, and the other users' API keeps its speed.""",
    )
    credentials_burst = Integer(
        20,
        min=1,
        max=10000,
        config=True,
        help="How many requests one server's API token may make to the credentials endpoint at once, "
             "before :attr:`credentials_rate` applies.",
    )
    iam_client = Any(help="The hub's HTTP client for the provider (one keep-alive pool), bounded by "
                          ":attr:`iam_concurrency_limit`.")

    @default("iam_client")
    def _iam_client_default(self):
        limiter = RequestLimiter(self.iam_concurrency_limit, on_change=metrics.observe_queue,
                                 on_wait=metrics.observe_queue_wait)
        return make_client(timeout=self.http_timeout, verify=self.validate_server_cert,
                           max_connections=self.iam_concurrency_limit, limiter=limiter)

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

    @default("auth_state_groups_key")
    def _auth_state_groups_key_default(self):
        return self.groups_from_auth_state

    @default("custom_403_message")
    def _custom_403_message_default(self):
        return ("Your account is not in a group that may use this hub. Ask your experiment's IAM "
                "administrator to add you to one, then sign in again.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        logscrub.install(self.log)
        if self.parent is not None:
            self._add_templates(self.parent)
        startup.check_settings(self)
        startup.warn_eos_refusal(self)
        startup.define_tokens_scope()
        self.credentials_buckets = TokenBuckets(self.credentials_rate, self.credentials_burst)
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

    def check_allow_config(self):
        super().check_allow_config()
        logscrub.install(self.log)  # again: the hub may have set up its handlers since __init__
        startup.check_tokens_role(self.parent)
        if self.parent is not None:
            spawner = check_spawner_config(self.parent)
            self._spawner_claims = spawner.claims_read() if spawner is not None else set()
        if self.freeze_startup_heap and startup.runs_in_hub(self.parent):
            startup.freeze_startup_heap(self.log)
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
            raise login_error(e, issuer=self.oidc_issuer) from None

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
        expected_nonce.set(login_nonce(handler) or "")
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

    def get_handlers(self, app):
        return (super().get_handlers(app) + credentials.handlers() + pages.handlers()
                + [(r"/dlaas/switch-account", SwitchAccountHandler), (r"/dlaas/sign-in-again", SignInAgainHandler)])

    def _add_templates(self, app):
        """Our pages, and a link to them on the home page, after the operator's own templates."""
        paths = getattr(app, "template_paths", None)
        if not isinstance(paths, list) or pages.TEMPLATES in paths:
            return
        default = app._template_paths_default()[0] if hasattr(app, "_template_paths_default") else None
        paths.insert(paths.index(default) if default in paths else len(paths), pages.TEMPLATES)

    async def httpfetch(self, url, label="fetching", parse_json=True, raise_error=True, **kwargs):
        """oauthenticator's JSON fetches, routed through the hub's bounded client for the provider."""
        if not parse_json:
            return await super().httpfetch(url, label, parse_json, raise_error, **kwargs)
        try:
            return await request_json(self.iam_client, kwargs.get("method", "GET"), url, label=label,
                                      headers=kwargs.get("headers"), content=kwargs.get("body"))
        except IAMError as e:
            if not raise_error:
                return None
            raise HTTPClientError(e.status or 599, message=str(e)) from None
