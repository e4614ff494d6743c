"""The hub's client for the identity provider: one aiohttp pool per provider, behind the bound.

aiohttp was chosen by measurement (``benchmarks/http_clients.py``): about a quarter of httpx's CPU
per token request, a third of tornado's simple client's. It is already in every hub image (JupyterHub
and kubernetes_asyncio require it).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import urllib.request
from urllib.parse import urlsplit

import aiohttp
import certifi
import httpx

from .http import DEFAULT_HEADERS, HttpxClient, IAMError, ProviderClient, safe_url
from .limiter import RequestLimiter

#: The client :func:`make_client` builds unless told otherwise.
DEFAULT_BACKEND = "aiohttp"


class AiohttpClient(ProviderClient):
    """The hub's client: one aiohttp session (made in the running loop at first use) and its pool."""

    def __init__(self, *, timeout: float, connect_timeout: float, verify=True, max_connections: int = 20,
                 limiter: RequestLimiter | None = None):
        super().__init__(limiter)
        self.timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self.verify = verify
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple, str | None] = {}

    def _ssl(self):
        if not self.verify:
            return False
        if os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"):
            return ssl.create_default_context()  # the operator's CA bundle, as httpx would take it
        return ssl.create_default_context(cafile=certifi.where())  # the CAs httpx trusted before

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            trace = aiohttp.TraceConfig()

            async def sent(session, context, params):
                hooks = context.trace_request_ctx
                if hooks and hooks[0] is not None:
                    hooks[0]()

            async def connecting(session, context, params):
                hooks = context.trace_request_ctx
                if hooks and hooks[1] is not None:
                    hooks[1]()

            trace.on_request_chunk_sent.append(sent)
            trace.on_request_headers_sent.append(sent)
            trace.on_connection_create_start.append(connecting)
            connector = aiohttp.TCPConnector(limit=self.max_connections, ssl=self._ssl())
            # No trust_env: it would look up ~/.netrc and the proxy variables in a thread for every
            # request (two executor round trips, a third of a request's CPU); proxy_for does it once.
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout,
                                                  headers=DEFAULT_HEADERS, trace_configs=[trace],
                                                  auto_decompress=True)
        return self._session

    async def fetch(self, method, url, *, headers, body, label, max_bytes, on_sent=None, on_connect=None):
        hooks = (on_sent, on_connect) if on_sent is not None or on_connect is not None else None
        try:
            async with self.session().request(method, url, data=body, headers=headers, allow_redirects=False,
                                              proxy=self.proxy_for(url), trace_request_ctx=hooks) as response:
                if response.content_length is not None and response.content_length > max_bytes:
                    raise IAMError(label, f"response larger than {max_bytes} bytes", status=response.status)
                raw = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    raw.extend(chunk)
                    if len(raw) > max_bytes:
                        raise IAMError(label, f"response larger than {max_bytes} bytes", status=response.status)
                return response.status, bytes(raw)
        except asyncio.TimeoutError:
            raise IAMError(label, f"timed out calling {safe_url(url)}", transient=True) from None
        except aiohttp.ClientError as e:
            raise IAMError(label, f"cannot reach {safe_url(url)} ({type(e).__name__})", transient=True) from None

    def proxy_for(self, url: str) -> str | None:
        """The proxy that HTTPS_PROXY / HTTP_PROXY / NO_PROXY name for this URL's origin (cached)."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname)
        if key not in self._proxies:
            proxy = urllib.request.getproxies().get(parts.scheme)
            if proxy and urllib.request.proxy_bypass(parts.hostname or ""):
                proxy = None
            self._proxies[key] = proxy or None
        return self._proxies[key]

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def make_client(*, timeout: float = 10.0, connect_timeout: float = 5.0, verify=True,
                max_connections: int = 20, limiter: RequestLimiter | None = None,
                backend: str | None = None) -> ProviderClient:
    """The hub's client for one provider: one keep-alive pool, bounded timeouts, no redirects.

    ``backend`` is ``"aiohttp"`` (the default, chosen by ``benchmarks/http_clients.py``: a quarter
    of httpx's CPU per request) or ``"httpx"``. ``limiter``, when given, bounds the requests in flight.
    """
    backend = backend or DEFAULT_BACKEND
    if backend == "aiohttp":
        return AiohttpClient(timeout=timeout, connect_timeout=connect_timeout, verify=verify,
                             max_connections=max_connections, limiter=limiter)
    if backend == "httpx":
        return HttpxClient(httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            verify=verify, follow_redirects=False, headers=dict(DEFAULT_HEADERS),
        ), limiter=limiter)
    raise ValueError(f"unknown HTTP client {backend!r}: aiohttp or httpx")


