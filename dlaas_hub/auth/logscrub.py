"""Keep authorization codes, states and tokens out of every log line the hub writes.

tornado logs a refused request as ``403 GET /hub/oauth_callback?code=...&state=...`` and other
libraries may log URLs or headers: a filter on the hub's log handlers rewrites each record's final
message before any handler formats it, whatever logger it came from.
"""

from __future__ import annotations

import logging
import re

# Query or form parameters whose values are credentials (OAuth 2, OIDC, JupyterHub, RFC 8693).
SECRET_PARAMS = ("code", "state", "token", "access_token", "refresh_token", "id_token", "subject_token",
                 "client_secret", "session_state", "code_verifier", "nonce", "id_token_hint", "_xsrf", "password",
                 "api_token")

# The lookahead on the names' first letters lets most positions of a long URL fail at once, instead
# of after trying every name (half the time on a sign-in's redirect line).
_FIRST_LETTERS = "".join(map(re.escape, sorted({p[0] for p in SECRET_PARAMS})))
_PARAM = re.compile(r"(?i)(?<![A-Za-z0-9_])(?=[" + _FIRST_LETTERS + "])("
                    + "|".join(map(re.escape, SECRET_PARAMS)) + r")=[^&\s'\"]+")
_BEARER = re.compile(r"(?i)\b(bearer|token)(\s+)(?:[A-Za-z0-9._~+/-]{20,}=*|[a-f0-9]{32,})(?![A-Za-z0-9])")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# A line break inside one record would let a hostile value pose as a log line of its own.
_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1b\x85\u2028\u2029]")

REDACTED = "[secret]"


# What _BEARER needs to match. Each pattern runs only on lines holding what it needs: most lines
# hold none of it, and a search or an ``in`` is cheaper than a substitution over a long URL.
_BEARER_HINT = re.compile(r"(?i)bearer|token")


def scrub(text: str) -> str:
    if "=" in text:
        text = _PARAM.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    if _BEARER_HINT.search(text):
        text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return text


def _escape_breaks(text: str) -> str:
    return _BREAKS.sub(lambda m: ascii(m.group(0))[1:-1], text)


class ScrubFilter(logging.Filter):
    """Rewrites a record's message with credentials redacted and line breaks escaped."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the formatter's business
            return True
        clean = scrub(message)
        head, sep, tail = clean.partition("\n")
        if record.exc_info or record.stack_info:
            # A traceback follows on lines of its own; only the message line can be forged.
            clean = _escape_breaks(head) + sep + tail if sep else _escape_breaks(clean)
        else:
            clean = _escape_breaks(clean)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = ScrubFilter()


def install(*loggers: logging.Logger) -> None:
    """Put the filter on every handler of ``loggers`` and of the root logger (once each)."""
    for logger in (*loggers, logging.getLogger()):
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
