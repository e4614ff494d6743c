"""A bound on the hub's concurrent requests to the provider, with sign-ins served first.

A provider serves many services; a workshop's logins and a storm of renewals must not flood it.
:class:`RequestLimiter` lets at most ``limit`` requests be in flight and queues the others, first
come first served within a priority, every sign-in before any renewal: a renewal storm never makes
a login wait behind it. A released slot is handed straight to the next waiter, so a late arrival
cannot overtake the queue.

The priority of a request is that of the task sending it (:data:`priority`, a context variable):
sign-in by default; :func:`renewal_priority` marks the background work.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from contextlib import asynccontextmanager, contextmanager

LOGIN = "login"
RENEWAL = "renewal"
#: In the order they are served.
PRIORITIES = (LOGIN, RENEWAL)

priority: contextvars.ContextVar[str] = contextvars.ContextVar("dlaas_request_priority", default=LOGIN)


@contextmanager
def renewal_priority():
    """Requests sent inside (and by tasks started inside) wait behind every sign-in's."""
    token = priority.set(RENEWAL)
    try:
        yield
    finally:
        priority.reset(token)


class RequestLimiter:
    """At most ``limit`` requests in flight; the rest wait in per-priority FIFO queues.

    ``on_change(limiter)`` is called whenever the queues or the in-flight count change, and
    ``on_wait(priority, seconds)`` once per granted slot, for metrics.
    """

    def __init__(self, limit: int, *, on_change=None, on_wait=None):
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"the limit must be a whole number of at least 1, not {limit!r}")
        self.limit = limit
        self.in_flight = 0
        self.peak = 0
        self.on_change = on_change
        self.on_wait = on_wait
        self._queues: dict[str, deque[asyncio.Future]] = {p: deque() for p in PRIORITIES}

    def queued(self, which: str | None = None) -> int:
        if which is not None:
            return sum(not f.done() for f in self._queues[which])
        return sum(self.queued(p) for p in PRIORITIES)

    async def acquire(self, which: str | None = None) -> None:
        which = which or priority.get()
        if which not in self._queues:
            raise ValueError(f"unknown priority {which!r}")
        if self.in_flight < self.limit and not self.queued():
            self._granted(which, 0.0)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self._changed()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._queues[which].append(waiter)
        started = time.monotonic()
        self._changed()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over as the wait was cancelled: pass it on
            else:
                self._forget(which, waiter)
            raise
        self._granted(which, time.monotonic() - started)

    def release(self) -> None:
        for which in PRIORITIES:
            queue = self._queues[which]
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the slot passes on: in_flight is unchanged
                    self._changed()
                    return
        self.in_flight -= 1
        self._changed()

    @asynccontextmanager
    async def slot(self, which: str | None = None):
        await self.acquire(which)
        try:
            yield
        finally:
            self.release()

    def _forget(self, which: str, waiter: asyncio.Future) -> None:
        try:
            self._queues[which].remove(waiter)
        except ValueError:
            pass
        self._changed()

    def _granted(self, which: str, seconds: float) -> None:
        if self.on_wait is not None:
            self.on_wait(which, seconds)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)
