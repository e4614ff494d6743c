"""Keeping a user's tokens fresh in the hub: decide from ``exp``, refresh once, re-exchange what is due.

Hub-free: the authenticator supplies the provider calls. The rules:

- nothing near expiry: no network I/O at all;
- something near expiry: one refresh_token grant (only if the broad access token itself is due),
  then one exchange per due target, however many requests ask at the same time (single flight);
- a transient failure (timeout, 5xx, refused connection) keeps the still-valid tokens and the user's
  login, and blocks new attempts for a jittered, growing backoff, so a failing IAM is not hammered;
- an exchange refused for the subject token itself on every due target (``invalid_grant``: revoked
  early; Keycloak's ``access_denied``: issued to another client) is tried once more after a refresh;
- only a definitive refusal of the refresh token (``invalid_grant``) ends the login, and it is recorded
  in the auth_state (``login_expired``), so that nothing asks the provider again until the user
  signs in anew (a refresh answer lost with a killed hub ends here when the provider rotates
  refresh tokens: the old one is refused);
- a renewal never overwrites a sign-in made while it ran (``login_id``): its result is dropped;
- every refreshed or exchanged token must be about the subject the account is bound to: a token
  about anyone else is never stored, and ends the login.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from .claims import jwt_expiry, subject_mismatch
from .exchange import ExchangedToken, ExchangeTarget
from .http import IAMError
from .limiter import renewal_priority

# An exchange refused for what the subject token is, not for the target: ``invalid_grant`` (revoked,
# expired) and Keycloak's ``access_denied`` "Client is not within the token audience" (issued to
# another client).
SUBJECT_REFUSALS = frozenset({"invalid_grant", "access_denied"})


class LoginExpired(Exception):
    """The provider refused the refresh token: the user has to sign in again."""


class _Replaced(Exception):
    """A new sign-in stored its own tokens while a renewal of the previous ones was under way."""


def due_at(expires_at, *, margin: float, lifetime: float | None = None) -> float:
    """When a token expiring at ``expires_at`` becomes due for renewal (0: already, or unknown).

    The margin never exceeds half the token's lifetime, so that short-lived tokens (EOS: 20 min,
    or seconds in tests) are renewed in their second half rather than on every request.
    """
    if not isinstance(expires_at, (int, float)):
        return 0.0
    if lifetime:
        margin = min(margin, lifetime / 2)
    return expires_at - margin


def is_due(expires_at, *, now: float, margin: float, lifetime: float | None = None) -> bool:
    """Whether a token expiring at ``expires_at`` should be renewed now."""
    return now >= due_at(expires_at, margin=margin, lifetime=lifetime)


@dataclass
class Backoff:
    base: float = 5.0
    ceiling: float = 300.0
    failures: int = 0
    not_before: float = 0.0

    def failed(self, now: float, deadline: float | None = None) -> float:
        """The pause before the next try; while the tokens in place still work (until ``deadline``), at
        most half of the time they have left, so that the last tries come before they run out."""
        self.failures += 1
        delay = random.uniform(self.base, max(self.base, min(self.ceiling, self.base * 2 ** (self.failures - 1))))
        if deadline is not None and deadline > now:
            delay = min(delay, max(self.base, (deadline - now) / 2))
        self.not_before = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.not_before = 0.0


@dataclass
class RenewalResult:
    refreshed: bool = False
    exchanged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.refreshed or bool(self.exchanged) or bool(self.failed)


class Renewer:
    """Renews auth_state dicts; one instance per hub, shared by all users."""

    def __init__(self, *, refresh, exchange, targets, margin: float = 300.0, log=None,
                 backoff_base: float = 5.0, backoff_ceiling: float = 300.0, on_fresh=None, subject=None):
        self.refresh = refresh  # async (refresh_token) -> token response dict; raises IAMError
        self.exchange = exchange  # async (subject_token, [targets]) -> {name: ExchangedToken | ExchangeError}
        self.targets = targets  # callable -> list[ExchangeTarget]
        self.margin = margin
        self.log = log
        self.backoff_base = backoff_base
        self.backoff_ceiling = backoff_ceiling
        self._inflight: dict[str, asyncio.Future] = {}
        self._backoff: dict[str, Backoff] = {}
        # When each user's earliest token becomes due: until then, not even auth_state (which
        # JupyterHub decrypts on every read) is loaded. A new login only makes tokens fresher.
        self._next_due: dict[str, float] = {}
        self.on_fresh = on_fresh  # called when a check finds nothing due (metrics)
        self.subject = subject  # (auth_state) -> the Subject its account is bound to, or None

    def forget(self, key: str) -> None:
        """A new login replaced the user's tokens: decide afresh next time."""
        self._next_due.pop(key, None)
        self._backoff.pop(key, None)

    def next_due(self, auth_state: dict) -> float:
        exchanged = auth_state.get("exchanged") or {}
        times = [due_at((exchanged.get(t.name) or {}).get("expires_at"), margin=self.margin,
                        lifetime=(exchanged.get(t.name) or {}).get("lifetime")) for t in self.targets()]
        return min(times, default=float("inf"))

    def due(self, auth_state: dict, now: float | None = None) -> tuple[bool, list[ExchangeTarget]]:
        """(whether the broad access token is due, the targets whose exchanged token is due)."""
        now = time.time() if now is None else now
        exchanged = auth_state.get("exchanged") or {}
        targets = [t for t in self.targets()
                   if is_due((exchanged.get(t.name) or {}).get("expires_at"), now=now, margin=self.margin,
                             lifetime=(exchanged.get(t.name) or {}).get("lifetime"))]
        access_due = is_due(auth_state.get("access_token_expires_at"), now=now, margin=self.margin,
                            lifetime=auth_state.get("access_token_lifetime"))
        return access_due, targets

    @staticmethod
    def runs_out(auth_state: dict, targets) -> float | None:
        """When the first of the due targets' tokens in place expires (None: none is in place)."""
        exchanged = auth_state.get("exchanged") or {}
        times = [(exchanged.get(t.name) or {}).get("expires_at") for t in targets]
        return min((t for t in times if isinstance(t, (int, float))), default=None)

    async def renew(self, key: str, load, save) -> RenewalResult | None:
        """Renew the auth_state of ``key`` (a user name) if needed; single flight per key.

        ``load`` is an async callable returning the current auth_state, ``save`` stores a new one.
        Returns None when nothing was due or a backoff is running, a RenewalResult otherwise.
        Raises LoginExpired on a definitive refusal of the refresh token.
        """
        if time.time() < self._next_due.get(key, 0.0):
            if self.on_fresh is not None:
                self.on_fresh()
            return None
        task = self._inflight.get(key)
        if task is None:
            with renewal_priority():  # its requests to the provider wait behind every sign-in's
                task = asyncio.ensure_future(self._renew(key, load, save))
            self._inflight[key] = task
            task.add_done_callback(lambda _t, k=key: self._inflight.pop(k, None))
        return await asyncio.shield(task)

    async def _renew(self, key, load, save) -> RenewalResult | None:
        auth_state = await load()
        if not auth_state:
            raise LoginExpired("no auth_state")
        if auth_state.get("login_expired"):
            raise LoginExpired("the login has expired")  # recorded earlier: the provider is not asked again
        login = auth_state.get("login_id")

        async def save_unless_replaced(state: dict) -> None:
            stored = await load()
            if stored and stored.get("login_id") != login:
                raise _Replaced()
            await save(state)

        try:
            return await self._renew_state(key, auth_state, save_unless_replaced)
        except _Replaced:
            pass
        except LoginExpired as e:
            try:
                await self._record_expiry(load, save_unless_replaced, str(e))
            except _Replaced:
                pass
            else:
                raise
        # The user signed in again while this renewal was asking the provider: the new sign-in's
        # tokens are newer than anything it got, and a refusal of the old refresh token is not theirs.
        self.forget(key)
        if self.log is not None:
            self.log.info("A new sign-in of %s replaced the tokens being renewed; keeping the new ones", key)
        return None

    async def _record_expiry(self, load, save, reason: str) -> None:
        auth_state = await load()  # as stored: whatever this attempt changed in memory is not kept
        if auth_state and not auth_state.get("login_expired"):
            auth_state["login_expired"] = {"at": int(time.time()), "reason": reason[:200]}
            await save(auth_state)

    async def _renew_state(self, key, auth_state: dict, save) -> RenewalResult | None:
        now = time.time()
        access_due, targets = self.due(auth_state, now)
        if not targets:
            self._next_due[key] = self.next_due(auth_state)
            if self.on_fresh is not None:
                self.on_fresh()
            return None
        backoff = self._backoff.setdefault(key, Backoff(self.backoff_base, self.backoff_ceiling))
        if now < backoff.not_before:
            return None
        result = RenewalResult()
        refresh_token = auth_state.get("refresh_token")
        try:
            if access_due and refresh_token:
                await self._refresh(key, auth_state, now)
                result.refreshed = True
            outcomes = await self.exchange(auth_state["access_token"], targets)
            refused = {getattr(o, "error", None) for o in outcomes.values()}
            if not result.refreshed and refresh_token and refused <= SUBJECT_REFUSALS:
                # The broad token was revoked or expired before its time, or was issued to another
                # client (Keycloak's 403 after the hub's client changed): refresh, try once more. A
                # refresh token of another client is refused in turn, and the user signs in again.
                self._warn("Re-exchange of %s's %s tokens refused (%s); refreshing the sign-in token to try once more",
                           key, ", ".join(outcomes), "; ".join(sorted({o.reason for o in outcomes.values()})))
                await self._refresh(key, auth_state, now)
                result.refreshed = True
                outcomes = await self.exchange(auth_state["access_token"], targets)
        except IAMError as e:
            if e.error == "invalid_grant":
                self._warn("The provider refused the refresh token of %s (%s): they must sign in again", key, e)
                raise LoginExpired(str(e)) from None
            delay = backoff.failed(now, self.runs_out(auth_state, targets))
            self._warn("Renewing tokens of %s failed (%s); keeping the current ones, next try in %.0f s",
                       key, e, delay)
            # Each due token's renewal failed, whether at the refresh or at its exchange: recorded as
            # its last error, so that the token page and the server's status bar say so (since when).
            for target in targets:
                result.failed[target.name] = e.error or "temporarily_unavailable"
                auth_state.setdefault("exchange_errors", {})[target.name] = {
                    "error": result.failed[target.name], "reason": str(e)[:200], "at": int(now)}
            await save(auth_state)
            return result
        for name, outcome in outcomes.items():
            if isinstance(outcome, ExchangedToken):
                self._check_subject(key, auth_state, outcome.access_token, f"{name} token")
        transient = False
        for name, outcome in outcomes.items():
            if isinstance(outcome, ExchangedToken):
                auth_state.setdefault("exchanged", {})[name] = outcome.to_state()
                (auth_state.get("exchange_errors") or {}).pop(name, None)
                result.exchanged.append(name)
            else:
                transient = transient or outcome.transient
                result.failed[name] = outcome.error or ("temporarily_unavailable" if outcome.transient else "failed")
                auth_state.setdefault("exchange_errors", {})[name] = {
                    "error": result.failed[name], "reason": outcome.reason, "at": int(now)}
                self._warn("Re-exchange of %s's %s token failed: %s", key, name, outcome)
        if transient or (result.failed and not result.exchanged):
            backoff.failed(now, self.runs_out(auth_state, targets))
        else:
            backoff.succeeded()
        await save(auth_state)
        self._next_due[key] = self.next_due(auth_state)
        return result

    async def _refresh(self, key, auth_state: dict, now: float) -> None:
        token_info = await self.refresh(auth_state["refresh_token"])
        for name in ("access_token", "id_token"):
            if isinstance(token_info.get(name), str):
                self._check_subject(key, auth_state, token_info[name], f"refreshed {name}")
        self._apply_refresh(auth_state, token_info, now)

    def _check_subject(self, key, auth_state: dict, token: str, what: str) -> None:
        subject = self.subject(auth_state) if self.subject is not None else None
        mismatch = subject and subject_mismatch(token, subject.sub, subject.iss)
        if mismatch:
            self._warn("Renewal for %s refused: the %s is not about IAM subject %s, the account's: %s; "
                       "nothing stored, they must sign in again", key, what, subject, mismatch)
            raise LoginExpired(f"the {what} is about another subject")

    def _apply_refresh(self, auth_state: dict, token_info: dict, now: float) -> None:
        access_token = token_info.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise IAMError("token refresh", "the provider's answer holds no access_token")
        expires_in = token_info.get("expires_in")
        expires_at = jwt_expiry(access_token) or (
            int(now + expires_in) if isinstance(expires_in, (int, float)) else None)
        auth_state["access_token"] = access_token
        auth_state["access_token_expires_at"] = expires_at
        auth_state["access_token_lifetime"] = (expires_at - int(now)) if expires_at else None
        # Providers that rotate refresh tokens send a new one; the others keep the old one valid.
        if token_info.get("refresh_token"):
            auth_state["refresh_token"] = token_info["refresh_token"]
        if token_info.get("id_token"):
            auth_state["id_token"] = token_info["id_token"]
        response = dict(auth_state.get("token_response") or {})
        response.update(token_info)
        response["refresh_token"] = auth_state["refresh_token"]
        auth_state["token_response"] = response

    def _warn(self, *args):
        if self.log is not None:
            self.log.warning(*args)
