"""The login's and the renewals' tokens in the hub: exchange targets, auth_state, and renewal glue.

The part of :class:`~dlaas_hub.auth.authenticator.DLaaSAuthenticator` that keeps the user's tokens;
exchange, renewal and JWT reading themselves are hub-free, in :mod:`dlaas_hub.tokens`.
"""

from __future__ import annotations

import asyncio
import secrets
import time

from tornado import web
from traitlets import Dict, Float, HasTraits, Integer, validate

from ..display import shown
from ..errors import ConfigError, login_error
from ..hubapi import metrics
from ..tokens.claims import jwt_expiry, subject_mismatch
from ..tokens.exchange import ExchangedToken, ExchangeTarget, exchange_all
from ..tokens.http import IAMError
from ..tokens.renewal import LoginExpired
from .identity import Subject
from .idtoken import IDTokenError

#: Version of the auth_state layout documented in docs/reference/auth-state.md.
AUTH_STATE_VERSION = 1


class TokenKeeping(HasTraits):
    """Exchange targets, the tokens a login stores in auth_state, and their renewal."""

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
        help="First pause, in seconds, after a failed renewal; it doubles (with jitter) up to 5 minutes, "
             "but never beyond half the time the user's tokens in place have left.",
    )

    @validate("exchange_targets")
    def _check_exchange_targets(self, proposal):
        for name, config in proposal.value.items():
            try:
                ExchangeTarget.from_config(name, config, key="DLaaSAuthenticator.exchange_targets")
            except ValueError as e:
                raise ConfigError(str(e)) from None
        return proposal.value

    @property
    def targets(self) -> list[ExchangeTarget]:
        return [ExchangeTarget.from_config(n, c) for n, c in self.exchange_targets.items()]

    async def build_auth_state_dict(self, token_info, user_info):
        auth_state = super().build_auth_state_dict(token_info, user_info)
        name = user_info.get(self.username_claim) if isinstance(self.username_claim, str) else None
        expires_in = token_info.get("expires_in")
        now = int(time.time())
        expires_at = jwt_expiry(token_info["access_token"]) or (
            int(now + expires_in) if isinstance(expires_in, (int, float)) else None)
        auth_state.update({
            "dlaas_version": AUTH_STATE_VERSION,
            # Which sign-in these tokens come from: a renewal of an earlier one never overwrites them.
            "login_id": secrets.token_hex(8),
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

        A transient provider failure never logs the user out. When the login has expired, a browser
        is sent to sign in again; a request with an API token goes on, so that the credentials
        endpoint can tell the server's token agent why (JupyterHub 5.5 would answer a bare 403).
        """
        if await self.refresh_credentials(user):
            return True
        get_auth_token = getattr(handler, "get_auth_token", None)
        return bool(callable(get_auth_token) and get_auth_token())
