from collections.abc import Awaitable, Callable

import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.patterns.ratelimit import Algorithm, RateLimiter, SlidingLog

MakeLimiter = Callable[[Algorithm], RateLimiter]
Burst = Callable[..., Awaitable[int]]


async def test_each_admission_expires_exactly_one_window_later(
    make_limiter: MakeLimiter, burst: Burst, clock: FakeClock
) -> None:
    limiter = make_limiter(SlidingLog(limit=5, window=10.0))
    for _ in range(5):  # one admission a second, t = 0 .. 4
        assert await burst(limiter, 1) == 1
        clock.advance(1)
    refused = await limiter.acquire("member:1")  # t = 5
    assert refused.retry_after == pytest.approx(5)  # the t = 0 admission leaves at t = 10
    assert refused.reset_after == pytest.approx(9)  # the t = 4 one at t = 14
    clock.advance(4.5)
    assert await burst(limiter, 3) == 0
    clock.advance(0.5)  # t = 10
    assert await burst(limiter, 3) == 1
    clock.advance(2)  # t = 12: two more have left
    assert await burst(limiter, 3) == 2


async def test_no_boundary_burst(make_limiter: MakeLimiter, burst: Burst, clock: FakeClock) -> None:
    limiter = make_limiter(SlidingLog(limit=100, window=1.0))
    clock.advance(0.875)
    assert await burst(limiter, 1000) == 100
    clock.advance(0.125)
    assert await burst(limiter, 1000) == 0
    clock.advance(0.875)
    assert await burst(limiter, 1000) == 100


async def test_cost_frees_room_only_when_enough_units_expire(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(SlidingLog(limit=10, window=10.0))
    for _ in range(3):
        assert (await limiter.acquire("k", cost=3)).allowed
        clock.advance(1)
    refused = await limiter.acquire("k", cost=3)  # t = 3, 9 used, 2 units too many
    assert (refused.allowed, refused.remaining) == (False, 1)
    assert refused.retry_after == pytest.approx(7)  # the 3 units from t = 0 leave at t = 10
    assert refused.reset_after == pytest.approx(9)
    assert (await limiter.acquire("k", cost=1)).remaining == 0
    clock.advance(7)
    assert (await limiter.acquire("k", cost=3)).allowed


def test_impossible_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="window must be at least"):
        SlidingLog(limit=1, window=-1.0)
