from collections.abc import Awaitable, Callable

import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.patterns.ratelimit import Algorithm, RateLimiter, SlidingWindow

MakeLimiter = Callable[[Algorithm], RateLimiter]
Burst = Callable[..., Awaitable[int]]


async def test_previous_window_weighs_by_its_overlap(
    make_limiter: MakeLimiter, burst: Burst, clock: FakeClock
) -> None:
    limiter = make_limiter(SlidingWindow(limit=100, window=10.0))
    assert await burst(limiter, 1000) == 100
    clock.advance(15)  # half-way into the next window: the 100 weigh 50
    assert await burst(limiter, 1000) == 50
    clock.advance(2.5)  # three quarters in: the old 100 weigh 25, the new 50 weigh fully
    assert await burst(limiter, 1000) == 25


async def test_boundary_burst_is_smoothed_away(
    make_limiter: MakeLimiter, burst: Burst, clock: FakeClock
) -> None:
    limiter = make_limiter(SlidingWindow(limit=100, window=1.0))
    clock.advance(0.875)
    assert await burst(limiter, 1000) == 100
    clock.advance(0.125)  # a fixed window would admit 100 more here
    assert await burst(limiter, 1000) == 0
    clock.advance(0.25)
    assert await burst(limiter, 1000) == 25


async def test_idle_for_two_windows_starts_full(
    make_limiter: MakeLimiter, burst: Burst, clock: FakeClock
) -> None:
    limiter = make_limiter(SlidingWindow(limit=100, window=1.0))
    assert await burst(limiter, 1000) == 100
    clock.advance(2.0)
    assert await burst(limiter, 1000) == 100


async def test_retry_after_when_the_current_window_is_full(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(SlidingWindow(limit=100, window=10.0))
    for _ in range(100):
        await limiter.acquire("k")
    refused = await limiter.acquire("k")
    assert (refused.allowed, refused.remaining) == (False, 0)
    # Next window starts in 10 s; there the 100 must fade to 99: 1% of it.
    assert refused.retry_after == pytest.approx(10.1)
    assert refused.reset_after == pytest.approx(20.0)


async def test_retry_after_when_the_previous_window_must_fade(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(SlidingWindow(limit=100, window=10.0))
    for _ in range(100):
        await limiter.acquire("k")
    clock.advance(15)
    for _ in range(50):
        assert (await limiter.acquire("k")).allowed
    refused = await limiter.acquire("k")
    # 100 * (1 - f) + 50 + 1 <= 100 needs f >= 0.51: 0.1 s from now.
    assert refused.retry_after == pytest.approx(0.1)
    clock.advance(0.1)
    assert (await limiter.acquire("k")).allowed


async def test_cost_counts_units(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(SlidingWindow(limit=10, window=1.0))
    assert (await limiter.acquire("k", cost=6)).remaining == 4
    refused = await limiter.acquire("k", cost=5)
    assert (refused.allowed, refused.remaining) == (False, 4)
    clock.advance(1.5)  # the 6 weigh 3
    decision = await limiter.acquire("k", cost=7)
    assert (decision.allowed, decision.remaining) == (True, 0)


def test_impossible_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="limit must be a whole number"):
        SlidingWindow(limit=-1, window=1.0)
