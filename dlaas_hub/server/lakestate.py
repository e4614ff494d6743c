"""The data lake's state for one server, as its token agent knows it, for JupyterLab to show.

The agent writes it after every round to ``datalake-state.json`` beside the credential files; the
server extension serves it to the status-bar item. Pure logic, no I/O: what the hub said of the
tokens (the credentials endpoint's ``status``: per target its state, expiry, last renewal and last
error, never a token) and what the agent met (the hub unreachable, the sign-in expired).

``renewal`` is one of:

- ``ok``: the tokens are fresh and the last renewal worked;
- ``failing``: the hub could not renew them lately (the IAM unreachable, or the hub itself), since
  ``failing_since``; the tokens in place still work until they expire;
- ``sign_in_expired``: the IAM refused the user's sign-in; only signing in again renews them.
"""

from __future__ import annotations

STATE_FILE = "datalake-state.json"
STATE_ENV = "DLAAS_STATE_FILE"


def _when(at) -> int | None:
    return int(at) if isinstance(at, (int, float)) and not isinstance(at, bool) else None


def tokens_of(status: dict | None) -> list[dict]:
    """The hub's per-target status, reduced to what the page shows (never a token)."""
    tokens = []
    for entry in (status or {}).get("tokens") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("target"), str):
            continue
        error = entry.get("last_error") if isinstance(entry.get("last_error"), dict) else None
        tokens.append({
            "target": entry["target"],
            "state": entry.get("state") if entry.get("state") in ("valid", "expired", "missing") else "missing",
            "expires_at": _when(entry.get("expires_at")),
            "last_renewal": _when(entry.get("last_renewal")),
            "last_error_at": _when(error.get("at")) if error else None,
        })
    return tokens


def renewal_failing_since(tokens: list[dict]) -> int | None:
    """The earliest error not followed by a successful renewal of that target: the hub is failing."""
    since = [t["last_error_at"] for t in tokens
             if t["last_error_at"] and (t["last_renewal"] is None or t["last_error_at"] > t["last_renewal"])]
    return min(since) if since else None


def after_fetch(status: dict | None, now: float) -> dict:
    """The state after a round in which the hub answered."""
    tokens = tokens_of(status)
    sign_in = (status or {}).get("sign_in_needed")
    if isinstance(sign_in, dict):
        return {"renewal": "sign_in_expired", "since": _when(sign_in.get("at")) or int(now), "tokens": tokens,
                "updated_at": int(now)}
    failing = renewal_failing_since(tokens)
    return {"renewal": "failing" if failing else "ok", "since": failing, "tokens": tokens, "updated_at": int(now)}


def after_sign_in_expired(previous: dict | None, now: float) -> dict:
    """The hub answered 401: the user must sign in again. Tokens in place stay as last known."""
    previous = previous or {}
    since = previous.get("since") if previous.get("renewal") == "sign_in_expired" else None
    return {"renewal": "sign_in_expired", "since": since or int(now), "tokens": previous.get("tokens") or [],
            "updated_at": int(now)}


def after_failure(previous: dict | None, now: float, reason: str) -> dict:
    """The round failed (the hub unreachable, or refusing): renewal failing since the first such round."""
    previous = previous or {}
    since = previous.get("since") if previous.get("renewal") == "failing" else None
    return {"renewal": "failing", "since": since or int(now), "reason": reason,
            "tokens": previous.get("tokens") or [], "updated_at": int(now)}
