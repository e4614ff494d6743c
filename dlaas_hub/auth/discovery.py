"""OpenID Provider discovery (``/.well-known/openid-configuration``)."""

from __future__ import annotations

import asyncio
import ipaddress
from urllib.parse import urlsplit

import httpx

from ..tokens.http import IAMError, request_json


def issuers_match(a: str, b: str) -> bool:
    """Compare two issuer identifiers modulo a trailing slash (INDIGO IAM's issuer has one)."""
    return bool(a) and bool(b) and a.rstrip("/") == b.rstrip("/")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def issuer_problem(issuer: str) -> str | None:
    """Why ``issuer`` cannot be a provider's issuer identifier; None when it can.

    OpenID Connect requires an https URL: tokens, the client secret and refresh tokens travel to
    it. Plain http is accepted only on the loopback interface, for a development provider.
    """
    try:
        parts = urlsplit(issuer)
    except ValueError:
        return "is not a URL"
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
        return None
    if parts.scheme == "http":
        return ("uses http://: the client secret and every token would cross the network in clear, and the "
                "provider's issuer is an https URL (plain http only for a development provider on 127.0.0.1)")
    return "is not an https URL: give the provider's issuer, for example https://iam-escape.cloud.cnaf.infn.it/"


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


class ProviderMetadata:
    """Fetches and caches a provider's metadata; concurrent callers share one fetch."""

    def __init__(self, client: httpx.AsyncClient, issuer: str, *, retries: int = 3, backoff: float = 0.5):
        self.client = client
        self.issuer = issuer
        self.retries = retries
        self.backoff = backoff
        self._metadata: dict | None = None
        self._lock = asyncio.Lock()

    @property
    def cached(self) -> dict | None:
        return self._metadata

    async def get(self) -> dict:
        if self._metadata is not None:
            return self._metadata
        async with self._lock:
            if self._metadata is None:
                self._metadata = await self._fetch()
        return self._metadata

    async def _fetch(self) -> dict:
        label = "OIDC discovery"
        document = await request_json(self.client, "GET", discovery_url(self.issuer), label=label,
                                      retries=self.retries, backoff=self.backoff)
        if not issuers_match(document.get("issuer", ""), self.issuer):
            raise IAMError(label, f"the provider's metadata names issuer {document.get('issuer')!r}, "
                                  f"not the configured {self.issuer!r}")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(document.get(key), str):
                raise IAMError(label, f"the provider's metadata has no {key}")
        return document
