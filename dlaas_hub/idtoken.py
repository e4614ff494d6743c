"""id_token verification against the provider's JWKS (OpenID Connect Core, section 3.1.3.7)."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt

from .discovery import issuers_match
from .http import request_json

#: Asymmetric signature algorithms only: ``none`` and HMAC (which a public key would turn into a
#: shared secret anyone can use) are never accepted.
SAFE_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


class IDTokenError(Exception):
    """The id_token is not acceptable. The message never contains the token."""


class JWKSCache:
    """The provider's signing keys by ``kid``.

    An unknown ``kid`` triggers a refetch (the provider may have rotated its keys), at most once
    per ``min_refetch_interval`` so that forged tokens cannot make the hub hammer the provider.
    """

    def __init__(self, client: httpx.AsyncClient, jwks_uri: str, *, min_refetch_interval: float = 30.0,
                 retries: int = 2):
        self.client = client
        self.jwks_uri = jwks_uri
        self.min_refetch_interval = min_refetch_interval
        self.retries = retries
        self._keys: dict[str, dict] = {}
        self._fetched_at: float | None = None
        self._refetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        document = await request_json(self.client, "GET", self.jwks_uri, label="JWKS", retries=self.retries)
        keys = document.get("keys")
        if not isinstance(keys, list):
            raise IDTokenError("the provider's JWKS has no key list")
        self._keys = {k["kid"]: k for k in keys if isinstance(k, dict) and isinstance(k.get("kid"), str)}
        self._fetched_at = time.monotonic()

    async def get(self, kid: str) -> dict:
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if kid in self._keys:
                return self._keys[kid]
            if self._fetched_at is None:
                await self._refresh()
            elif kid not in self._keys:
                recently = (self._refetched_at is not None
                            and time.monotonic() - self._refetched_at < self.min_refetch_interval)
                if not recently:
                    self._refetched_at = time.monotonic()
                    await self._refresh()
        if kid not in self._keys:
            raise IDTokenError("the id_token is signed with a key the provider does not publish")
        return self._keys[kid]


def _key_for(jwk: dict, alg: str):
    expected_kty = _KEY_TYPES.get(alg[:2])
    if jwk.get("kty") != expected_kty:
        raise IDTokenError(f"the signing key's type does not fit algorithm {alg}")
    if jwk.get("alg") not in (None, alg):
        raise IDTokenError(f"the signing key is published for {jwk.get('alg')}, not {alg}")
    if jwk.get("use") not in (None, "sig"):
        raise IDTokenError("the signing key is not a signature key")
    try:
        return jwt.PyJWK(jwk, algorithm=alg).key
    except jwt.PyJWTError:
        raise IDTokenError("the provider published an unusable signing key") from None


async def verify_id_token(token: str, *, jwks: JWKSCache, issuer: str, audience: str,
                          algorithms, leeway: float = 60, nonce: str | None = None) -> dict:
    """Verify signature, algorithm, issuer, audience, expiry (and nonce) and return the claims."""
    if not isinstance(token, str) or not token:
        raise IDTokenError("the provider returned no id_token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise IDTokenError("the id_token is not a well-formed JWT") from None
    alg = header.get("alg")
    if alg not in algorithms or alg not in SAFE_ALGORITHMS:
        raise IDTokenError(f"the id_token's algorithm {alg!r} is not allowed")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise IDTokenError("the id_token names no signing key (kid)")
    key = _key_for(await jwks.get(kid), alg)
    try:
        claims = jwt.decode(
            token, key=key, algorithms=[alg], audience=audience, leeway=leeway,
            options={"require": ["iss", "sub", "aud", "exp", "iat"], "verify_iss": False},
        )
    except jwt.ExpiredSignatureError:
        raise IDTokenError("the id_token has expired") from None
    except jwt.InvalidAudienceError:
        raise IDTokenError("the id_token was issued for another client (aud)") from None
    except jwt.InvalidSignatureError:
        raise IDTokenError("the id_token's signature does not verify") from None
    except jwt.PyJWTError as e:
        raise IDTokenError(f"the id_token is invalid ({type(e).__name__})") from None
    if not issuers_match(claims.get("iss", ""), issuer):
        raise IDTokenError("the id_token was issued by another provider (iss)")
    aud = claims["aud"]
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != audience:
        raise IDTokenError("the id_token has several audiences and another authorized party (azp)")
    if nonce is not None and claims.get("nonce") != nonce:
        raise IDTokenError("the id_token's nonce does not match the login request")
    return claims
