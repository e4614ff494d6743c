"""Who a hub account belongs to: acceptable names, and the IAM subject an account is bound to.

Pure logic, no hub. A provider's ``preferred_username`` is untrusted: it may fold onto another user's
hub name (``ALICE`` and ``alice``, the Kelvin sign and ``k``), so an account is bound to the ``sub``
and issuer of its first login, and a later login by another subject is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..display import shown

DEFAULT_USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._@-]{0,63}$"


def name_matches(pattern: str, name) -> bool:
    """Whether ``name`` matches ``pattern`` in full (``$`` would also accept a trailing newline)."""
    if not pattern:
        return isinstance(name, str) and bool(name)
    return isinstance(name, str) and re.fullmatch(pattern, name) is not None


def name_rule(pattern: str) -> str:
    """The rule for hub user names, in words a scientist can read."""
    if pattern == DEFAULT_USERNAME_PATTERN:
        return ("lower-case letters, digits and the characters . _ @ -, starting with a letter or a digit, "
                "at most 64 characters")
    return f"names matching {pattern}"


@dataclass(frozen=True)
class Subject:
    """An identity at a provider: its ``sub`` and the issuer (compared modulo a trailing slash)."""

    sub: str
    iss: str

    def __post_init__(self):
        object.__setattr__(self, "iss", self.iss.rstrip("/"))

    def to_state(self) -> dict:
        return {"sub": self.sub, "iss": self.iss}

    def __str__(self):
        return f"{shown(self.sub, 80)} of {shown(self.iss, 120)}"


def bound_subject(auth_state: dict | None, *, issuer: str, claims_key: str = "oauth_user") -> Subject | None:
    """The subject an account's stored auth_state binds it to, if any.

    Accounts from before the binding was recorded carry the ``sub`` in their stored claims.
    """
    if not isinstance(auth_state, dict):
        return None
    recorded = auth_state.get("subject")
    if isinstance(recorded, dict) and isinstance(recorded.get("sub"), str) and isinstance(recorded.get("iss"), str):
        return Subject(recorded["sub"], recorded["iss"])
    claims = auth_state.get(claims_key)
    if isinstance(claims, dict) and isinstance(claims.get("sub"), str) and claims["sub"]:
        return Subject(claims["sub"], issuer)
    return None
