"""Reading what a token says about itself, without trusting it for anything else."""

from __future__ import annotations

import jwt


def jwt_expiry(token: str) -> int | None:
    """The ``exp`` of a JWT access token, or None when the token is opaque or has no expiry.

    The signature is not checked: the hub received the token straight from the provider over
    TLS and only uses ``exp`` to schedule renewal.
    """
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        return int(exp)
    return None
