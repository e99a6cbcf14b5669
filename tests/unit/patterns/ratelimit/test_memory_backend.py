import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.patterns.ratelimit import FixedWindow, MemoryBackend, RateLimiter, RatePolicy, SlidingLog


async def test_keys_are_bounded_and_the_least_recently_used_goes_first(clock: FakeClock) -> None:
    algorithm = FixedWindow(limit=1, window=60)
    store = MemoryBackend(clock=clock, max_keys=3).bind(RatePolicy("p", 1, 60), algorithm)
    for key in ("a", "b", "c"):
        assert store.take_now(key, 1).allowed
    assert not store.take_now("a", 1).allowed  # "a" is now the most recently used
    assert store.take_now("d", 1).allowed  # evicts "b"
    assert (len(store), store.evictions) == (3, 1)
    assert not store.take_now("a", 1).allowed  # kept
    assert store.take_now("b", 1).allowed  # forgotten: starts full again


async def test_decisions_follow_the_injected_clock(clock: FakeClock) -> None:
    limiter = RateLimiter("p", SlidingLog(limit=1, window=60), MemoryBackend(clock=clock))
    assert (await limiter.acquire("k")).allowed
    clock.advance(59.5)
    assert not (await limiter.acquire("k")).allowed
    clock.advance(0.5)
    assert (await limiter.acquire("k")).allowed


def test_max_keys_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_keys must be at least 1"):
        MemoryBackend(max_keys=0)
