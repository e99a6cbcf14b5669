from collections.abc import Awaitable, Callable

import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.patterns.ratelimit import Algorithm, FixedWindow, RateLimiter

MakeLimiter = Callable[[Algorithm], RateLimiter]
Burst = Callable[..., Awaitable[int]]


async def test_limit_per_window_then_a_fresh_window(
    make_limiter: MakeLimiter, burst: Burst, clock: FakeClock
) -> None:
    limiter = make_limiter(FixedWindow(limit=100, window=1.0))
    assert await burst(limiter, 1000) == 100
    clock.advance(0.5)
    assert await burst(limiter, 1000) == 0
    clock.advance(0.5)
    assert await burst(limiter, 1000) == 100


async def test_boundary_lets_twice_the_limit_through_in_a_moment(
    make_limiter: MakeLimiter, burst: Burst, clock: FakeClock
) -> None:
    # The known weakness of fixed windows, kept on purpose: the cheapest algorithm.
    limiter = make_limiter(FixedWindow(limit=100, window=1.0))
    clock.advance(0.875)
    assert await burst(limiter, 1000) == 100
    clock.advance(0.125)
    assert await burst(limiter, 1000) == 100


async def test_decision_reports_remaining_and_time_to_the_boundary(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(FixedWindow(limit=3, window=10.0))
    clock.advance(2.5)
    first = await limiter.acquire("k")
    assert (first.allowed, first.limit, first.remaining, first.reset_after, first.retry_after) == (
        True,
        3,
        2,
        7.5,
        0,
    )
    await limiter.acquire("k")
    await limiter.acquire("k")
    refused = await limiter.acquire("k")
    assert (refused.allowed, refused.remaining, refused.reset_after, refused.retry_after) == (
        False,
        0,
        7.5,
        7.5,
    )


async def test_cost_counts_units_and_refusals_count_nothing(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(FixedWindow(limit=10, window=60.0))
    assert (await limiter.acquire("k", cost=4)).remaining == 6
    assert (await limiter.acquire("k", cost=4)).remaining == 2
    refused = await limiter.acquire("k", cost=3)
    assert (refused.allowed, refused.remaining) == (False, 2)
    assert (await limiter.acquire("k", cost=2)).remaining == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0, "window": 1.0}, "limit must be a whole number"),
        ({"limit": 10, "window": 0.0001}, "window must be at least 0.001"),
        ({"limit": 10, "window": float("inf")}, "window must be finite"),
    ],
)
def test_impossible_parameters_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FixedWindow(**kwargs)  # type: ignore[arg-type]
