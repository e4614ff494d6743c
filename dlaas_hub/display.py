"""How untrusted text (user and server names, profile slugs, claims) appears in a log line or a page.

Shared by every part: the authenticator names accounts and subjects with it, the spawners name
servers and profiles. Pure, no hub.
"""

from __future__ import annotations


def shown(name, limit: int = 64) -> str:
    """A name as it may appear in a log line or page: printable ASCII, quoted, shortened."""
    text = ascii(name) if isinstance(name, str) else repr(type(name).__name__)
    return text if len(text) <= limit else text[: limit - 4] + "...'"
