"""The token agent's one kind of request: a GET of a JSON object from the hub's API, with the server's token.

The standard library's ``http.client``, chosen by measurement (``benchmarks/token_agent.py``): an agent
runs in every user pod and asks a few times an hour, so what it holds resident is what counts, and
httpx with asyncio held about 30 MiB against about 17 for this. One connection per request: there
is nothing to keep alive between rounds minutes apart.
"""

from __future__ import annotations

import json
import sys
from urllib.parse import urlencode, urlsplit

#: The largest answer read: the credential files of one server are a few kilobytes.
MAX_BYTES = 1 << 20


class HubError(Exception):
    """A request to the hub failed: ``status`` is None when no answer came (unreachable, timeout)."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None):
        self.status = status
        self.retry_after = retry_after  # what a 429 asked for, in seconds
        super().__init__(reason)


def _safe(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"  # never the query


def keep_tls_out() -> None:
    """For a process that only talks plain HTTP (the agent of a hub at an http:// URL): ssl stays unloaded.

    In Zero-to-JupyterHub the hub's API is plain HTTP inside the cluster (``http://hub:8081``), and
    ``http.client`` imports ssl, whose libraries are a third of the agent's memory. Call it before the
    first request; a process that has loaded either already keeps what it has.
    """
    if "ssl" not in sys.modules and "http.client" not in sys.modules:
        sys.modules["ssl"] = None  # http.client then offers plain HTTP only


def get_json(url: str, *, params: dict | None = None, headers: dict | None = None, timeout: float = 20.0) -> dict:
    """GET ``url`` and return its JSON object; raises :class:`HubError` for anything else."""
    import http.client  # here, not above: after keep_tls_out() had its say

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HubError(f"not an http(s) URL: {_safe(url)}")
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.hostname, parts.port, timeout=timeout)
    target = parts.path or "/"
    if params:
        target += ("&" if parts.query else "?") + urlencode(params)
    elif parts.query:
        target += "?" + parts.query
    try:
        connection.request("GET", target, headers={"Accept": "application/json", **(headers or {})})
        response = connection.getresponse()
        body = response.read(MAX_BYTES + 1)
        status, retry_after = response.status, response.getheader("Retry-After", "")
    except (OSError, http.client.HTTPException) as e:
        raise HubError(f"the hub at {_safe(url)} could not be reached ({type(e).__name__})") from None
    finally:
        connection.close()
    if status >= 300:
        raise HubError(f"HTTP {status} from {_safe(url)}", status=status,
                       retry_after=float(retry_after) if retry_after.isdigit() else None)
    try:
        document = json.loads(body) if len(body) <= MAX_BYTES else None
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise HubError(f"malformed answer from {_safe(url)}: not a JSON object", status=status)
    return document
