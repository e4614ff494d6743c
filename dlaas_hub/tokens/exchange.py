"""RFC 8693 token exchange as INDIGO IAM speaks it: one audience-restricted token per target."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from .claims import jwt_expiry
from .http import IAMError, request_json

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


@dataclass(frozen=True)
class ExchangeTarget:
    """A storage service the hub obtains a token for (for example EOS or Rucio)."""

    name: str
    audience: str
    scope: str
    required: bool = True

    @classmethod
    def from_config(cls, name: str, config, *, key: str = "exchange_targets") -> "ExchangeTarget":
        """Build from one entry of ``exchange_targets``; errors name the offending key."""
        where = f"{key}[{name!r}]"
        if not isinstance(config, dict):
            raise ValueError(f"{where} must be a dict with 'audience' and 'scope'")
        unknown = set(config) - {"audience", "scope", "required"}
        if unknown:
            raise ValueError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        for field in ("audience", "scope"):
            value = config.get(field)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{where}.{field} must be a non-empty string (IAM requires it)")
        scopes = config["scope"].split()
        if "offline_access" in scopes:
            raise ValueError(f"{where}.scope must not contain offline_access: IAM refuses it in an exchange")
        required = config.get("required", True)
        if not isinstance(required, bool):
            raise ValueError(f"{where}.required must be true or false")
        return cls(name=name, audience=config["audience"], scope=" ".join(scopes), required=required)


def eos_refusal(target: ExchangeTarget) -> str | None:
    """Why the EOS server would refuse this target's tokens in eosxd's file, or None.

    EOS maps an ``oauth2:<jwt>:<userinfo>`` token by calling the provider's userinfo with it, and
    INDIGO IAM's userinfo answers only tokens that carry ``openid``.
    """
    if "openid" in target.scope.split():
        return None
    return (f"scope {target.scope!r} has no openid: EOS checks its token at the provider's userinfo, "
            "which refuses a token without openid, so EOS will refuse every token of this target")


@dataclass(frozen=True)
class ExchangedToken:
    """An exchanged access token and what the hub needs to know about it."""

    access_token: str
    expires_at: int
    audience: str
    scope: str
    issued_at: int = 0

    def __repr__(self):
        # dataclass' default repr would print the token.
        return f"ExchangedToken(audience={self.audience!r}, scope={self.scope!r}, expires_at={self.expires_at})"

    def to_state(self) -> dict:
        state = {"access_token": self.access_token, "expires_at": self.expires_at,
                 "audience": self.audience, "scope": self.scope, "obtained_at": int(time.time())}
        if self.issued_at:
            state["lifetime"] = max(1, self.expires_at - self.issued_at)
        return state


class ExchangeError(IAMError):
    """The exchange for one target failed."""

    def __init__(self, target: ExchangeTarget, cause: IAMError):
        super().__init__(cause.label, cause.reason, status=cause.status, error=cause.error,
                         transient=cause.transient, description=cause.description)
        self.target = target


def exchange_params(subject_token: str, target: ExchangeTarget) -> dict:
    return {
        "grant_type": TOKEN_EXCHANGE_GRANT,
        "subject_token": subject_token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "audience": target.audience,
        "scope": target.scope,
    }


async def exchange_token(client: httpx.AsyncClient, token_url: str, subject_token: str,
                         target: ExchangeTarget, *, auth=None, client_params=None,
                         retries: int = 1, on_sent=None, on_connect=None) -> ExchangedToken:
    """Exchange ``subject_token`` for a token restricted to ``target``'s audience.

    ``on_sent()``, when given, is called once the request is on the wire; ``on_connect()`` when it
    must open a connection first.
    """
    label = f"token exchange for {target.name}"
    data = exchange_params(subject_token, target)
    data.update(client_params or {})
    now = time.time()
    try:
        document = await request_json(client, "POST", token_url, label=label, retries=retries,
                                      data=data, auth=auth, on_sent=on_sent,
                                      on_connect=on_connect)
    except IAMError as e:
        raise ExchangeError(target, e) from None
    token = document.get("access_token")
    if not isinstance(token, str) or not token:
        raise ExchangeError(target, IAMError(label, "the provider's answer holds no access_token"))
    expires_at = jwt_expiry(token)
    if expires_at is None:
        expires_in = document.get("expires_in")
        if not isinstance(expires_in, (int, float)) or isinstance(expires_in, bool) or expires_in <= 0:
            raise ExchangeError(target, IAMError(label, "the provider's answer says nothing of the token's lifetime"))
        expires_at = int(now + expires_in)
    scope = document.get("scope") if isinstance(document.get("scope"), str) else target.scope
    return ExchangedToken(access_token=token, expires_at=expires_at, audience=target.audience, scope=scope,
                          issued_at=int(now))


async def exchange_all(client: httpx.AsyncClient, token_url: str, subject_token: str, targets, *,
                       observe=None, sent: asyncio.Event | None = None, **kwargs):
    """Exchange for every target concurrently.

    Each request goes out once the one before it is written (or is waiting for a new connection), so
    the provider has the first one as early as possible.

    Returns ``{name: ExchangedToken | ExchangeError}``: one target's failure never cancels the others.
    ``observe(target, result, seconds)``, when given, is called once per target as it completes.
    ``sent``, when given, is set once every request is on the wire (or has ended), so that the
    caller can do its own work while the provider does the exchanges.
    """
    targets = list(targets)
    unsent = {t.name for t in targets}

    def on_sent(name):
        unsent.discard(name)
        if not unsent and sent is not None:
            sent.set()

    if not targets and sent is not None:
        sent.set()

    # Started all at once, the requests' preparations interleave and delay the first one's sending.
    # A request opening a connection releases the next at once: none waits for another's handshake.
    released = [asyncio.Event() for _ in targets]

    async def one(i, target):
        if i:
            await released[i - 1].wait()
        start = time.perf_counter()

        def on_wire():
            on_sent(target.name)
            released[i].set()

        try:
            result = await exchange_token(client, token_url, subject_token, target,
                                          on_sent=on_wire, on_connect=released[i].set, **kwargs)
        except ExchangeError as e:
            result = e
        finally:
            on_wire()
        if observe is not None:
            observe(target, result, time.perf_counter() - start)
        if isinstance(result, ExchangeError):
            raise result
        return result

    results = await asyncio.gather(*(one(i, t) for i, t in enumerate(targets)), return_exceptions=True)
    out = {}
    for target, result in zip(targets, results):
        if isinstance(result, BaseException) and not isinstance(result, ExchangeError):
            raise result
        out[target.name] = result
    return out
