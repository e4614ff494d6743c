import asyncio

import pytest

from dlaas_hub.tokens.limiter import LOGIN, RENEWAL, RequestLimiter, priority, renewal_priority


async def hold(limiter, log, name, which=None, release: asyncio.Event | None = None):
    async with limiter.slot(which):
        log.append(name)
        if release is not None:
            await release.wait()
        else:
            await asyncio.sleep(0)


async def test_never_more_than_the_limit_in_flight():
    limiter = RequestLimiter(3)
    in_flight, seen = 0, []

    async def request():
        nonlocal in_flight
        async with limiter.slot():
            in_flight += 1
            seen.append(in_flight)
            await asyncio.sleep(0.001)
            in_flight -= 1

    await asyncio.gather(*(request() for _ in range(40)))
    assert max(seen) == limiter.peak == 3
    assert limiter.in_flight == 0 and limiter.queued() == 0


async def test_sign_ins_are_served_before_queued_renewals_and_each_in_order():
    limiter = RequestLimiter(1)
    gate, log = asyncio.Event(), []
    first = asyncio.ensure_future(hold(limiter, log, "busy", release=gate))
    await asyncio.sleep(0)
    waiting = [asyncio.ensure_future(hold(limiter, log, name, which))
               for name, which in [("r1", RENEWAL), ("r2", RENEWAL), ("l1", LOGIN), ("r3", RENEWAL), ("l2", LOGIN)]]
    await asyncio.sleep(0)
    assert (limiter.queued(LOGIN), limiter.queued(RENEWAL)) == (2, 3)
    gate.set()
    await asyncio.gather(first, *waiting)
    assert log == ["busy", "l1", "l2", "r1", "r2", "r3"]


async def test_a_late_arrival_does_not_overtake_the_queue():
    limiter = RequestLimiter(1)
    gate, log = asyncio.Event(), []
    first = asyncio.ensure_future(hold(limiter, log, "busy", release=gate))
    await asyncio.sleep(0)
    queued = asyncio.ensure_future(hold(limiter, log, "queued", RENEWAL))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.sleep(0)  # busy released: the slot is handed to "queued", not free for anyone
    late = asyncio.ensure_future(hold(limiter, log, "late", RENEWAL))
    await asyncio.gather(first, queued, late)
    assert log == ["busy", "queued", "late"]


async def test_a_cancelled_waiter_gives_up_its_place_and_leaks_no_slot():
    limiter = RequestLimiter(1)
    gate, log = asyncio.Event(), []
    first = asyncio.ensure_future(hold(limiter, log, "busy", release=gate))
    await asyncio.sleep(0)
    doomed = asyncio.ensure_future(hold(limiter, log, "doomed"))
    after = asyncio.ensure_future(hold(limiter, log, "after"))
    await asyncio.sleep(0)
    doomed.cancel()
    gate.set()
    await asyncio.gather(first, after)
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert log == ["busy", "after"]
    assert limiter.in_flight == 0 and limiter.queued() == 0


async def test_a_waiter_cancelled_as_its_slot_arrives_passes_the_slot_on():
    limiter = RequestLimiter(1)
    await limiter.acquire()
    waiter = asyncio.ensure_future(limiter.acquire())
    other = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0)
    limiter.release()  # handed to waiter...
    waiter.cancel()  # ...which is cancelled before it runs
    await other
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.in_flight == 1
    limiter.release()
    assert limiter.in_flight == 0


async def test_priority_follows_the_task_that_sends():
    assert priority.get() == LOGIN
    with renewal_priority():
        inner = asyncio.ensure_future(_current())
    assert priority.get() == LOGIN
    assert await inner == RENEWAL


async def _current():
    return priority.get()


async def test_metrics_hooks_see_the_queue_and_the_waits():
    waits, lengths = [], []
    limiter = RequestLimiter(1, on_wait=lambda p, s: waits.append(p),
                             on_change=lambda lim: lengths.append(lim.queued()))
    gate = asyncio.Event()
    first = asyncio.ensure_future(hold(limiter, [], "busy", release=gate))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(hold(limiter, [], "queued", RENEWAL))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, second)
    assert waits == [LOGIN, RENEWAL]
    assert max(lengths) == 1 and lengths[-1] == 0


@pytest.mark.parametrize("limit", [0, -3, 1.5, True, None])
def test_a_limit_below_one_is_refused(limit):
    with pytest.raises(ValueError, match="at least 1"):
        RequestLimiter(limit)
