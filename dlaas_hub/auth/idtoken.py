"""id_token verification against the provider's JWKS (OpenID Connect Core, section 3.1.3.7)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time

import httpx
import jwt
from jwt.utils import base64url_decode

from ..tokens.http import request_json
from .discovery import issuers_match

#: Asymmetric signature algorithms only: ``none`` and HMAC (which a public key would turn into a
#: shared secret anyone can use) are never accepted.
SAFE_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
# The hash behind each algorithm, for at_hash (OpenID Connect Core 3.1.3.6); EdDSA as Ed25519's SHA-512.
_AT_HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512, "EdDSA": hashlib.sha512}


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


def new_nonce_seed() -> str:
    """A random value kept with the login's state (in the browser's signed state cookie)."""
    return secrets.token_urlsafe(32)


def nonce_for(seed: str) -> str:
    """The ``nonce`` sent to the provider for a login whose state holds ``seed``.

    A hash rather than the seed itself, as OpenID Connect Core 15.5.2 suggests: the authorization
    request (and so the provider's and proxies' logs) never carries what the state cookie holds.
    """
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def at_hash(access_token: str, alg: str) -> str:
    """The ``at_hash`` an id_token signed with ``alg`` carries for ``access_token``."""
    hasher = _AT_HASHES.get(alg) or _AT_HASHES.get(alg[-3:])
    if hasher is None:
        raise IDTokenError(f"no at_hash is defined for algorithm {alg!r}")
    digest = hasher(access_token.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


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


def _header_of(token: str) -> dict:
    """The JOSE header, which names the key and algorithm to verify with.

    Only the header's segment is read: ``jwt.get_unverified_header`` would check every character of
    the whole token, as the verifying ``jwt.decode`` does again right after.
    """
    try:
        header = json.loads(base64url_decode(token.split(".", 1)[0]))
    except (ValueError, binascii.Error):
        raise IDTokenError("the id_token is not a well-formed JWT") from None
    if not isinstance(header, dict):
        raise IDTokenError("the id_token is not a well-formed JWT")
    return header


async def verify_id_token(token: str, *, jwks: JWKSCache, issuer: str, audience: str,
                          algorithms, leeway: float = 60, nonce: str | None = None,
                          access_token: str | None = None) -> dict:
    """Verify signature, algorithm, issuer, audience and expiry, and return the claims.

    With ``nonce``, the id_token must carry exactly that nonce (a login's id_token); with
    ``access_token``, an ``at_hash`` the id_token carries must be that token's (same answer).
    """
    if not isinstance(token, str) or not token:
        raise IDTokenError("the provider returned no id_token")
    header = _header_of(token)
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
    if nonce is not None:
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise IDTokenError("the id_token's nonce is missing or is not this login's (replayed id_token?)")
    if access_token is not None and "at_hash" in claims:
        if not isinstance(claims["at_hash"], str) or not hmac.compare_digest(
                claims["at_hash"].encode(), at_hash(access_token, alg).encode()):
            raise IDTokenError("the id_token's at_hash does not match the access token it came with")
    return claims
