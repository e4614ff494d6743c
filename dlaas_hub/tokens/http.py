"""Requests to the identity provider (or the hub): the client interface, httpx's, and the error model.

The hub's own client, aiohttp's, is in :mod:`dlaas_hub.tokens.hubclient`: the token agent, which
runs in the user's image, needs only httpx.

Errors carry the request's label, status and the OAuth ``error`` code only: never a response body,
a query string or a header, since any of those may hold a token.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import re
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from .limiter import RequestLimiter

#: Largest JSON document accepted from the identity provider. Real token responses and JWKS are a
#: few kilobytes; anything far larger is an error or an attack, not data.
MAX_RESPONSE_BYTES = 256 * 1024

_OAUTH_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")

DEFAULT_HEADERS = {"User-Agent": "dlaas-hub", "Accept": "application/json"}


class IAMError(Exception):
    """A call to the identity provider failed.

    ``transient`` tells whether the same call may succeed later (timeouts, refused connections,
    5xx) or whether the provider gave a definitive answer (4xx, malformed data).
    """

    def __init__(self, label, reason, *, status=None, error=None, transient=False, description=None):
        self.label = label
        self.reason = reason
        self.status = status
        self.error = error
        self.description = description  # the provider's error_description, made printable
        self.transient = transient
        super().__init__(f"{label}: {reason}")


def safe_url(url) -> str:
    """The URL without query or fragment, fit for a log line."""
    parts = urlsplit(str(url))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def oauth_error_code(document) -> str | None:
    """The RFC 6749 ``error`` code of an error response, if it looks like one."""
    if isinstance(document, dict):
        code = document.get("error")
        if isinstance(code, str) and _OAUTH_ERROR_CODE.match(code):
            return code
    return None


#: What of a provider's ``error_description`` is kept: printable text, a line's worth, without any
#: run of 16 or more characters that could be a code, a token or a key.
_DESCRIPTION_CHARS = 160
_OPAQUE = re.compile(r"[A-Za-z0-9._~+/=-]{16,}")


def oauth_error_description(document) -> str | None:
    """RFC 6749's ``error_description``, made safe for a log line and a page: printable characters only
    (no line breaks, no control characters), at most a line's worth. The provider's words, which often
    say what the code cannot (Keycloak: "Audience not found"); a run that could be a code or a token
    is replaced, so none reaches a log or a page."""
    if not isinstance(document, dict) or not isinstance(document.get("error_description"), str):
        return None
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in document["error_description"]).split())
    text = _OPAQUE.sub("[…]", text)  # a code or token some providers echo back: never kept
    return (text[:_DESCRIPTION_CHARS - 1] + "…" if len(text) > _DESCRIPTION_CHARS else text) or None


class ProviderClient:
    """What :func:`request_json` needs of a client: a bounded slot, one request, closing."""

    def __init__(self, limiter: RequestLimiter | None = None):
        self.limiter = limiter

    def slot(self):
        return self.limiter.slot() if self.limiter is not None else contextlib.nullcontext()

    async def fetch(self, method, url, *, headers, body, label, max_bytes, on_sent=None, on_connect=None):
        """Send one request; returns (status, body). Raises :class:`IAMError` for transport failures."""
        raise NotImplementedError

    async def aclose(self) -> None:
        pass

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()


class HttpxClient(ProviderClient):
    """An ``httpx.AsyncClient`` behind the same interface (the token agent's, and respx in tests)."""

    def __init__(self, client: httpx.AsyncClient, limiter: RequestLimiter | None = None):
        super().__init__(limiter)
        self.client = client

    async def fetch(self, method, url, *, headers, body, label, max_bytes, on_sent=None, on_connect=None):
        extensions = {}
        if on_sent is not None or on_connect is not None:
            async def trace(event: str, info: dict) -> None:
                if on_sent is not None and event.endswith("send_request_body.complete"):
                    on_sent()
                elif on_connect is not None and event.startswith("connection.connect_") and event.endswith(".started"):
                    on_connect()
            extensions["trace"] = trace
        try:
            async with self.client.stream(method, url, headers=headers, content=body,
                                          extensions=extensions) as response:
                try:
                    raw = await _read_limited(response, max_bytes)
                except ValueError:
                    raise IAMError(label, f"response larger than {max_bytes} bytes",
                                   status=response.status_code) from None
                return response.status_code, raw
        except httpx.TimeoutException:
            raise IAMError(label, f"timed out calling {safe_url(url)}", transient=True) from None
        except httpx.TransportError as e:
            raise IAMError(label, f"cannot reach {safe_url(url)} ({type(e).__name__})", transient=True) from None

    async def aclose(self) -> None:
        await self.client.aclose()


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ValueError("response too large")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body.extend(chunk)
        if len(body) > limit:
            raise ValueError("response too large")
    return bytes(body)


def as_provider_client(client) -> ProviderClient:
    return client if isinstance(client, ProviderClient) else HttpxClient(client)


async def request_json(client, method: str, url: str, *, label: str,
                       retries: int = 0, backoff: float = 0.5, max_bytes: int = MAX_RESPONSE_BYTES,
                       on_sent=None, on_connect=None, expect_json: bool = True,
                       data: dict | None = None, content=None, params: dict | None = None,
                       headers: dict | None = None, auth: tuple[str, str] | None = None) -> dict:
    """Send one request and return its JSON object, retrying transient failures.

    ``client`` is a :class:`ProviderClient` (or a bare ``httpx.AsyncClient``). ``data`` is sent
    form-encoded, ``content`` as is; ``auth`` is a (client id, secret) pair for HTTP Basic.
    With ``expect_json=False`` a successful answer may have any body (RFC 7009's revocation answers
    with an empty one): a JSON object is returned as such, anything else as ``{}``.
    ``on_sent()``, when given, is called each time the request has been written to the connection;
    ``on_connect()`` each time it has to open a new connection first.
    Each attempt waits for a slot of the client's limiter, if it has one; the pause between
    attempts holds none. Raises :class:`IAMError`; a 4xx answer is never retried.
    """
    client = as_provider_client(client)
    headers = dict(headers or {})
    if params:
        url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
    body = content.encode() if isinstance(content, str) else content
    if data is not None:
        body = urlencode(data).encode()
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    attempt = 0
    while True:
        try:
            async with client.slot():
                status, raw = await client.fetch(method, url, headers=headers, body=body, label=label,
                                                 max_bytes=max_bytes, on_sent=on_sent, on_connect=on_connect)
            return _document(status, raw, url=url, label=label, expect_json=expect_json)
        except IAMError as e:
            if not e.transient or attempt >= retries:
                raise
        attempt += 1
        # Full jitter: concurrent hubs or logins do not retry in lockstep.
        await asyncio.sleep(random.uniform(0, backoff * 2 ** (attempt - 1)))


def _document(status: int, body: bytes, *, url: str, label: str, expect_json: bool) -> dict:
    try:
        document = json.loads(body) if body else None
    except ValueError:
        document = None

    if status >= 500:
        raise IAMError(label, f"HTTP {status} from {safe_url(url)}", status=status,
                       error=oauth_error_code(document), transient=True)
    if status >= 400:
        error, description = oauth_error_code(document), oauth_error_description(document)
        said = ": ".join(filter(None, (error, description)))
        raise IAMError(label, f"HTTP {status} from {safe_url(url)}" + (f" ({said})" if said else ""),
                       status=status, error=error, description=description)
    if status >= 300:
        raise IAMError(label, f"unexpected redirect (HTTP {status}) from {safe_url(url)}", status=status)
    if not isinstance(document, dict) and not expect_json:
        return {}
    if not isinstance(document, dict):
        raise IAMError(label, f"malformed response from {safe_url(url)}: not a JSON object", status=status)
    return document
