"""A bound on how often one API token may ask the hub for something: token buckets by key.

A server's token agent asks for its credential files every few minutes. A notebook holds the same
token (``JUPYTERHUB_API_TOKEN``), and a loop in it asking thousands of times a minute slowed every
user's hub API. Each token gets a bucket of ``burst`` requests, refilled at ``rate`` per second; a
request that finds the bucket empty is refused before the hub looks the token up, so that refusing
costs the hub almost nothing. Buckets are keyed by a digest, never by the token.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict


def key_of(secret: str) -> bytes:
    """A bucket's key for a token: its digest, so that no token is kept."""
    return hashlib.blake2b(secret.encode("utf-8", "replace"), digest_size=16).digest()


class TokenBuckets:
    """Per-key token buckets: ``burst`` requests at once, ``rate`` per second sustained.

    At most ``max_keys`` buckets are kept: a full bucket is the same as none, so the full ones go
    first, then the least recently used, down to nine tenths (requests with made-up tokens cannot
    grow the table, and the table is swept once per thousand new keys, not at each).
    """

    def __init__(self, rate: float, burst: int, *, max_keys: int = 10_000, clock=time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be positive and burst at least 1 (not {rate}, {burst})")
        self.rate, self.burst, self.max_keys, self.clock = rate, burst, max_keys, clock
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def take(self, key: bytes) -> float:
        """Take one request from ``key``'s bucket: 0 when allowed, else the seconds until one is."""
        now = self.clock()
        level, at = self._buckets.get(key, (float(self.burst), now))
        level = min(float(self.burst), level + (now - at) * self.rate)
        if level >= 1:
            self._buckets[key] = (level - 1, now)
            self._buckets.move_to_end(key)
            self._prune(now)
            return 0.0
        self._buckets[key] = (level, now)
        self._buckets.move_to_end(key)
        return (1 - level) / self.rate

    def retry_after(self, wait: float) -> int:
        """``Retry-After`` for a refusal: whole seconds, at least one."""
        return max(1, math.ceil(wait))

    def __len__(self) -> int:
        return len(self._buckets)

    def _prune(self, now: float) -> None:
        if len(self._buckets) <= self.max_keys:
            return
        full = [k for k, (level, at) in self._buckets.items() if level + (now - at) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]
        while len(self._buckets) > self.max_keys * 9 // 10:
            self._buckets.popitem(last=False)
