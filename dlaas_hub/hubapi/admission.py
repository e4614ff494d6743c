"""Admission of a burst of requests into the hub's event loop, a few per loop iteration.

When every token agent asks at once, hundreds of credentials requests become ready in the same
event-loop iteration, and each one's first step (JupyterHub's token lookup, its scopes, the
account) runs synchronously up to its first wait. Run back to back, those steps hold the loop for
a second or more: sign-ins, the proxy's checks and the servers' activity reports all wait behind
them. The gate lets a fixed number of requests start per iteration, in arrival order; the others
wait their turn without costing the loop anything. The total work is the same: it is spread out.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Admission:
    """Lets at most ``per_iteration`` callers of :meth:`enter` through per event-loop iteration,
    first come first served. Those beyond wait for a later iteration; a caller cancelled while
    waiting gives up its place."""

    def __init__(self, per_iteration: int):
        if per_iteration < 1:
            raise ValueError(f"per_iteration must be at least 1, not {per_iteration}")
        self.per_iteration = per_iteration
        self._entered = 0
        self._waiting: deque[asyncio.Future] = deque()
        self._reset_scheduled = False

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiting if not f.done())

    async def enter(self) -> None:
        if self._entered < self.per_iteration and not self._waiting:
            self._entered += 1
            self._schedule_next_iteration()
            return
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        self._schedule_next_iteration()
        await future

    def _schedule_next_iteration(self) -> None:
        if not self._reset_scheduled:
            self._reset_scheduled = True
            asyncio.get_running_loop().call_soon(self._next_iteration)

    def _next_iteration(self) -> None:
        # Runs once per loop iteration while anyone entered or waits: a new iteration's allowance.
        self._reset_scheduled = False
        self._entered = 0
        while self._waiting and self._entered < self.per_iteration:
            future = self._waiting.popleft()
            if not future.done():  # a cancelled waiter's future is done
                future.set_result(None)
                self._entered += 1
        if self._entered or self._waiting:
            self._schedule_next_iteration()
