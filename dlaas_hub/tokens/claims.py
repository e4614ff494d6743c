"""Reading what a token says about itself, without trusting it for anything else."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import jwt

# A login reads each token it receives twice or more (expiry, subject), and PyJWT's decoding costs
# tens of microseconds a token: what a token says is kept, keyed by its digest so that the cache
# holds no token, for the last _REMEMBERED tokens.
_REMEMBERED = 256
_claims_by_digest: OrderedDict[bytes, dict | None] = OrderedDict()


def jwt_expiry(token: str) -> int | None:
    """The ``exp`` of a JWT access token, or None when the token is opaque or has no expiry.

    The signature is not checked: the hub received the token straight from the provider over
    TLS and only uses ``exp`` to schedule renewal.
    """
    claims = _unverified_claims(token)
    exp = claims.get("exp") if claims is not None else None
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        return int(exp)
    return None


def _unverified_claims(token: str) -> dict | None:
    """The claims of a JWT, read without checking its signature (None for an opaque token).

    The dict returned is shared: read it, never change it.
    """
    if not isinstance(token, str):
        return None
    digest = hashlib.sha256(token.encode()).digest()
    try:
        claims = _claims_by_digest[digest]
    except KeyError:
        claims = _decode(token)
        _claims_by_digest[digest] = claims
        if len(_claims_by_digest) > _REMEMBERED:
            _claims_by_digest.popitem(last=False)
    return claims


def _decode(token: str) -> dict | None:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None


def subject_mismatch(token: str, sub: str, iss: str) -> str | None:
    """Why ``token`` is not about the subject ``sub`` of issuer ``iss``, or None when it is.

    A JWT access token names its subject and issuer; an opaque token says nothing, and only the
    provider that issued it in answer to the hub's own request vouches for it. The issuers are
    compared modulo a trailing slash, as IAM's carries one.
    """
    claims = _unverified_claims(token)
    if claims is None:
        return None
    if claims.get("sub") != sub:
        return "it is about another subject (sub)"
    token_iss = claims.get("iss")
    if isinstance(token_iss, str) and token_iss.rstrip("/") != iss.rstrip("/"):
        return "it was issued by another provider (iss)"
    return None
