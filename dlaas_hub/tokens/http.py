"""One pooled async HTTP client for every call to the identity provider, and the error model.

Errors carry the request's label, status and the OAuth ``error`` code only: never a response body,
a query string or a header, since any of those may hold a token.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from urllib.parse import urlsplit, urlunsplit

import httpx

#: Largest JSON document accepted from the identity provider. Real token responses and JWKS are a
#: few kilobytes; anything far larger is an error or an attack, not data.
MAX_RESPONSE_BYTES = 256 * 1024

_OAUTH_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


class IAMError(Exception):
    """A call to the identity provider failed.

    ``transient`` tells whether the same call may succeed later (timeouts, refused connections,
    5xx) or whether the provider gave a definitive answer (4xx, malformed data).
    """

    def __init__(self, label, reason, *, status=None, error=None, transient=False):
        self.label = label
        self.reason = reason
        self.status = status
        self.error = error
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


def make_client(*, timeout: float = 10.0, connect_timeout: float = 5.0, verify=True,
                max_connections: int = 20) -> httpx.AsyncClient:
    """The shared client: keep-alive pool, bounded timeouts, no redirects to other hosts."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        verify=verify,
        follow_redirects=False,
        headers={"User-Agent": "dlaas-hub", "Accept": "application/json"},
    )


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


async def request_json(client: httpx.AsyncClient, method: str, url: str, *, label: str,
                       retries: int = 0, backoff: float = 0.5, max_bytes: int = MAX_RESPONSE_BYTES,
                       on_sent=None, on_connect=None, expect_json: bool = True, **kwargs) -> dict:
    """Send one request and return its JSON object, retrying transient failures.

    With ``expect_json=False`` a successful answer may have any body (RFC 7009's revocation answers
    with an empty one): a JSON object is returned as such, anything else as ``{}``.
    ``on_sent()``, when given, is called each time the request has been written to the connection;
    ``on_connect()`` each time it has to open a new connection first.
    Raises :class:`IAMError`; a 4xx answer is never retried.
    """
    if on_sent is not None or on_connect is not None:
        async def trace(event: str, info: dict) -> None:
            if on_sent is not None and event.endswith("send_request_body.complete"):
                on_sent()
            elif on_connect is not None and event.startswith("connection.connect_") and event.endswith(".started"):
                on_connect()

        kwargs["extensions"] = {**kwargs.get("extensions", {}), "trace": trace}
    attempt = 0
    while True:
        try:
            return await _request_once(client, method, url, label=label, max_bytes=max_bytes,
                                       expect_json=expect_json, **kwargs)
        except IAMError as e:
            if not e.transient or attempt >= retries:
                raise
        attempt += 1
        # Full jitter: concurrent hubs or logins do not retry in lockstep.
        await asyncio.sleep(random.uniform(0, backoff * 2 ** (attempt - 1)))


async def _request_once(client, method, url, *, label, max_bytes, expect_json=True, **kwargs) -> dict:
    try:
        async with client.stream(method, url, **kwargs) as response:
            try:
                body = await _read_limited(response, max_bytes)
            except ValueError:
                raise IAMError(label, f"response larger than {max_bytes} bytes",
                               status=response.status_code) from None
    except httpx.TimeoutException:
        raise IAMError(label, f"timed out calling {safe_url(url)}", transient=True) from None
    except httpx.TransportError as e:
        raise IAMError(label, f"cannot reach {safe_url(url)} ({type(e).__name__})", transient=True) from None

    try:
        document = json.loads(body) if body else None
    except ValueError:
        document = None

    status = response.status_code
    if status >= 500:
        raise IAMError(label, f"HTTP {status} from {safe_url(url)}", status=status,
                       error=oauth_error_code(document), transient=True)
    if status >= 400:
        error = oauth_error_code(document)
        raise IAMError(label, f"HTTP {status} from {safe_url(url)}" + (f" ({error})" if error else ""),
                       status=status, error=error)
    if status >= 300:
        raise IAMError(label, f"unexpected redirect (HTTP {status}) from {safe_url(url)}", status=status)
    if not isinstance(document, dict) and not expect_json:
        return {}
    if not isinstance(document, dict):
        raise IAMError(label, f"malformed response from {safe_url(url)}: not a JSON object", status=status)
    return document
