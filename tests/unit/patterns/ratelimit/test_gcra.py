import random
from collections.abc import Awaitable, Callable

import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.patterns.ratelimit import GCRA, Algorithm, MemoryBackend, RateLimiter, TokenBucket

MakeLimiter = Callable[[Algorithm], RateLimiter]
Burst = Callable[..., Awaitable[int]]


async def test_burst_then_the_sustained_rate(
    make_limiter: MakeLimiter, burst: Burst, clock: FakeClock
) -> None:
    limiter = make_limiter(GCRA(limit=100, period=1.0, burst=200))
    assert await burst(limiter, 1000) == 200
    clock.advance(0.5)
    assert await burst(limiter, 1000) == 50


async def test_one_request_per_emission_interval_after_the_burst(
    make_limiter: MakeLimiter, burst: Burst, clock: FakeClock
) -> None:
    gcra = GCRA(limit=10, period=1.0)
    assert gcra.emission_interval == pytest.approx(0.1)
    limiter = make_limiter(gcra)
    assert await burst(limiter, 100) == 10
    refused = await limiter.acquire("member:1")
    assert refused.retry_after == pytest.approx(0.1)
    clock.advance(0.05)
    assert await burst(limiter, 5) == 0
    clock.advance(0.05)
    assert await burst(limiter, 5) == 1
    for _ in range(20):  # a client pacing exactly at the rate is never refused
        clock.advance(0.1)
        assert await burst(limiter, 1) == 1


async def test_decision_reports_remaining_reset_and_retry(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(GCRA(limit=10, period=1.0))
    first = await limiter.acquire("k")
    assert (first.allowed, first.limit, first.remaining) == (True, 10, 9)
    assert first.reset_after == pytest.approx(0.1)
    for _ in range(8):
        await limiter.acquire("k")
    last = await limiter.acquire("k")
    assert (last.allowed, last.remaining) == (True, 0)
    assert last.reset_after == pytest.approx(1.0)
    refused = await limiter.acquire("k")
    assert (refused.allowed, refused.remaining) == (False, 0)
    assert refused.retry_after == pytest.approx(0.1)
    assert refused.reset_after == pytest.approx(1.0)


async def test_cost_moves_the_arrival_time_by_that_many_intervals(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(GCRA(limit=10, period=1.0))
    assert (await limiter.acquire("k", cost=5)).remaining == 5
    refused = await limiter.acquire("k", cost=6)
    assert (refused.allowed, refused.remaining) == (False, 5)
    assert refused.retry_after == pytest.approx(0.1)
    assert (await limiter.acquire("k", cost=5)).remaining == 0


async def test_admits_exactly_what_the_equivalent_token_bucket_admits(clock: FakeClock) -> None:
    gcra = RateLimiter("gcra", GCRA(limit=100, period=1.0, burst=200), MemoryBackend(clock=clock))
    bucket = RateLimiter(
        "tb", TokenBucket(replenish_rate=100, burst_capacity=200), MemoryBackend(clock=clock)
    )
    rng = random.Random(7)
    admitted = {"gcra": 0, "tb": 0}
    for _ in range(2000):
        # Steps on a 1/1024 s grid, so both sides see exactly the same times.
        clock.advance(rng.randrange(0, 16) / 1024)
        cost = rng.choice((1, 1, 1, 2, 5))
        g = await gcra.acquire("k", cost)
        b = await bucket.acquire("k", cost)
        assert (g.allowed, g.remaining) == (b.allowed, b.remaining)
        admitted["gcra"] += g.allowed
        admitted["tb"] += b.allowed
    assert 0 < admitted["gcra"] == admitted["tb"] < 2000


def test_advertised_policy_is_the_burst_over_its_refill_time() -> None:
    assert (GCRA(limit=100, period=1.0, burst=200).quota, GCRA(limit=100, period=1.0, burst=200).window) == (
        200,
        2.0,
    )
    assert (GCRA(limit=60, period=60.0).quota, GCRA(limit=60, period=60.0).window) == (60, 60.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0, "period": 1.0}, "limit must be a whole number"),
        ({"limit": 10, "period": 0.0}, "period must be at least"),
        ({"limit": 10, "period": 1.0, "burst": 0}, "burst must be a whole number"),
    ],
)
def test_impossible_parameters_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GCRA(**kwargs)  # type: ignore[arg-type]
