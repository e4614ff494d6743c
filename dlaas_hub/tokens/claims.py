"""Reading what a token says about itself, without trusting it for anything else."""

from __future__ import annotations

import binascii
import json

from jwt.utils import base64url_decode


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

    Only the payload segment is decoded: the hub reads ``exp`` and ``sub`` of every token it receives,
    several times a sign-in, and ``jwt.decode`` would check every character of all three segments
    in Python first (ten times the cost).
    """
    parts = token.split(".") if isinstance(token, str) else ()
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64url_decode(parts[1]))
    except (ValueError, binascii.Error):
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
