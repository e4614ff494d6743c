"""OpenID Provider discovery (``/.well-known/openid-configuration``)."""

from __future__ import annotations

import asyncio

import httpx

from ..tokens.http import IAMError, request_json


def issuers_match(a: str, b: str) -> bool:
    """Compare two issuer identifiers modulo a trailing slash (INDIGO IAM's issuer has one)."""
    return bool(a) and bool(b) and a.rstrip("/") == b.rstrip("/")


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
