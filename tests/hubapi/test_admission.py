"""A burst of credentials requests enters the event loop a few per iteration, in arrival order, and
the credentials endpoint passes through that gate before JupyterHub authenticates the request."""

import asyncio

import pytest
from jupyterhub.apihandlers.base import APIHandler

from dlaas_hub.hubapi import credentials
from dlaas_hub.hubapi.admission import Admission


class Iterations:
    """Counts the event loop's iterations: one callback per iteration, scheduled again each time."""

    def __init__(self):
        self.count = 0
        self._running = True
        asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self):
        self.count += 1
        if self._running:
            asyncio.get_running_loop().call_soon(self._tick)

    def stop(self):
        self._running = False


async def burst(gate: Admission, size: int) -> list[tuple[int, int]]:
    """``size`` callers at once; returns (caller, iteration it entered in), in the order they entered."""
    iterations = Iterations()
    entered = []

    async def caller(i):
        await gate.enter()
        entered.append((i, iterations.count))

    await asyncio.gather(*(caller(i) for i in range(size)))
    iterations.stop()
    return entered


async def test_a_burst_enters_a_few_per_loop_iteration_in_arrival_order():
    entered = await burst(Admission(4), 22)
    assert [i for i, _ in entered] == list(range(22))
    per_iteration = {}
    for _, iteration in entered:
        per_iteration[iteration] = per_iteration.get(iteration, 0) + 1
    assert max(per_iteration.values()) == 4
    assert len(per_iteration) == 6  # 4, 4, 4, 4, 4, 2


async def test_the_gate_empties_and_lets_the_next_burst_in_at_once():
    gate = Admission(3)
    await burst(gate, 10)
    for _ in range(3):
        await asyncio.sleep(0)
    assert gate.waiting == 0 and not gate._reset_scheduled  # nothing left running on an idle hub
    entered = await burst(gate, 2)
    assert len({iteration for _, iteration in entered}) == 1


async def test_a_caller_cancelled_while_waiting_gives_up_its_place():
    gate = Admission(1)
    entered = []

    async def caller(i):
        await gate.enter()
        entered.append(i)

    tasks = [asyncio.create_task(caller(i)) for i in range(4)]
    await asyncio.sleep(0)  # all four asked; 0 entered, 1 to 3 wait
    assert gate.waiting == 3
    tasks[1].cancel()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=5)
    assert entered == [0, 2, 3]
    assert tasks[1].cancelled()


def test_an_empty_allowance_is_refused():
    with pytest.raises(ValueError, match="per_iteration must be at least 1"):
        Admission(0)


async def test_the_credentials_endpoint_is_admitted_before_jupyterhub_authenticates(monkeypatch):
    order = []

    class Gate:
        async def enter(self):
            order.append("admitted")

    async def prepare(self):
        order.append("authenticated")

    monkeypatch.setattr(credentials, "ADMISSION", Gate())
    monkeypatch.setattr(APIHandler, "prepare", prepare)
    monkeypatch.setattr(credentials.CredentialsAPIHandler, "refused_for_flooding", lambda self: False)
    handler = object.__new__(credentials.CredentialsAPIHandler)  # prepare uses no request state
    await handler.prepare()
    assert order == ["admitted", "authenticated"]
