"""The bound on one token's requests to the credentials endpoint: token buckets by key."""

import pytest

from dlaas_hub.hubapi.ratelimit import TokenBuckets, key_of


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_burst_passes_then_the_rate_holds():
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=5, clock=clock)
    key = key_of("server-token")
    assert [buckets.take(key) for _ in range(5)] == [0.0] * 5
    wait = buckets.take(key)
    assert wait == pytest.approx(0.5)  # one request every half second at 2 per second
    assert buckets.retry_after(wait) == 1
    clock.now += 0.5
    assert buckets.take(key) == 0.0 and buckets.take(key) > 0
    clock.now += 60  # a minute idle refills the burst, not more
    assert [buckets.take(key) for _ in range(6)].count(0.0) == 5


def test_each_token_has_its_own_bucket():
    buckets = TokenBuckets(rate=1.0, burst=2, clock=Clock())
    flood, agent = key_of("notebook-loop"), key_of("other-server")
    for _ in range(100):
        buckets.take(flood)
    assert buckets.take(agent) == 0.0


def test_a_bucket_is_keyed_by_a_digest_never_by_the_token():
    buckets = TokenBuckets(rate=1.0, burst=2, clock=Clock())
    buckets.take(key_of("secret-api-token"))
    assert all(b"secret-api-token" not in k for k in buckets._buckets)
    assert key_of("a") != key_of("b") and len(key_of("a")) == 16


def test_made_up_tokens_cannot_grow_the_table():
    clock = Clock()
    buckets = TokenBuckets(rate=1.0, burst=3, max_keys=100, clock=clock)
    kept = key_of("busy-server")
    for _ in range(3):
        buckets.take(kept)
    for i in range(1000):
        buckets.take(key_of(f"forged-{i}"))
        clock.now += 0.001
    assert len(buckets) <= 100


def test_nonsense_bounds_are_refused():
    with pytest.raises(ValueError):
        TokenBuckets(rate=0, burst=1)
    with pytest.raises(ValueError):
        TokenBuckets(rate=1, burst=0)
