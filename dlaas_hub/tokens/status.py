"""What a user may know of their data-lake tokens: per target, audience, expiry, renewal, last error.

Pure logic, no hub: the token page and its JSON twin render this. Never a token value.
"""

from __future__ import annotations

import time


def _when(at) -> int | None:
    return int(at) if isinstance(at, (int, float)) and not isinstance(at, bool) else None


def token_status(auth_state: dict | None, targets=(), now: float | None = None) -> list[dict]:
    """One entry per exchange target (configured ones first, in order), without any token value.

    ``state`` is ``valid``, ``expired`` or ``missing``; ``last_error`` is the latest failed exchange
    of that target (``error``, ``reason``, ``at``) or None.
    """
    now = time.time() if now is None else now
    auth_state = auth_state or {}
    exchanged = auth_state.get("exchanged") or {}
    errors = auth_state.get("exchange_errors") or {}
    names = [t.name for t in targets] + sorted((set(exchanged) | set(errors)) - {t.name for t in targets})
    configured = {t.name: t for t in targets}
    entries = []
    for name in names:
        token = exchanged.get(name) or {}
        target = configured.get(name)
        expires_at = _when(token.get("expires_at"))
        error = errors.get(name)
        entries.append({
            "target": name,
            "audience": token.get("audience") or (target.audience if target else None),
            "scope": token.get("scope") or (target.scope if target else None),
            "required": target.required if target else None,
            "state": "missing" if not token else ("valid" if expires_at and expires_at > now else "expired"),
            "expires_at": expires_at,
            "expires_in": int(expires_at - now) if expires_at else None,
            "last_renewal": _when(token.get("obtained_at")),
            "last_error": {"error": str(error.get("error") or "failed"), "reason": str(error.get("reason") or ""),
                           "at": _when(error.get("at"))} if isinstance(error, dict) else None,
        })
    return entries


def sign_in_needed(auth_state: dict | None) -> dict | None:
    """``{"at", "reason"}`` when the provider refused the user's refresh token: they must sign in again."""
    expired = (auth_state or {}).get("login_expired")
    if not isinstance(expired, dict):
        return None
    return {"at": _when(expired.get("at")), "reason": str(expired.get("reason") or "")}
