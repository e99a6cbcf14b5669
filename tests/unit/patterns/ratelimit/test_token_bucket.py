from collections.abc import Awaitable, Callable

import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.patterns.ratelimit import Algorithm, RateLimiter, TokenBucket

MakeLimiter = Callable[[Algorithm], RateLimiter]
Burst = Callable[..., Awaitable[int]]


async def test_spring_defaults_admit_the_burst_then_the_replenish_rate(
    make_limiter: MakeLimiter, burst: Burst, clock: FakeClock
) -> None:
    limiter = make_limiter(TokenBucket(replenish_rate=100, burst_capacity=200))
    assert await burst(limiter, 1000) == 200
    clock.advance(0.5)
    assert await burst(limiter, 1000) == 50
    clock.advance(0.01)
    assert await burst(limiter, 1000) == 1


async def test_refill_stops_at_burst_capacity(
    make_limiter: MakeLimiter, burst: Burst, clock: FakeClock
) -> None:
    limiter = make_limiter(TokenBucket(replenish_rate=100, burst_capacity=200))
    assert await burst(limiter, 1000) == 200
    clock.advance(60)
    assert await burst(limiter, 1000) == 200


async def test_refused_requests_consume_nothing(
    make_limiter: MakeLimiter, burst: Burst, clock: FakeClock
) -> None:
    limiter = make_limiter(TokenBucket(replenish_rate=10, burst_capacity=10))
    assert await burst(limiter, 10) == 10
    for _ in range(4):
        clock.advance(0.02)  # a fifth of a token each time, then a refused request
        assert await burst(limiter, 1) == 0
    clock.advance(0.22)  # 0.3 s in all: 3 tokens, whatever was refused meanwhile
    assert await burst(limiter, 10) == 3


async def test_decision_reports_remaining_reset_and_retry(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(TokenBucket(replenish_rate=100, burst_capacity=200))
    first = await limiter.acquire("k")
    assert (first.allowed, first.limit, first.remaining) == (True, 200, 199)
    assert first.reset_after == pytest.approx(0.01)
    assert first.retry_after == 0
    for _ in range(199):
        await limiter.acquire("k")
    refused = await limiter.acquire("k")
    assert (refused.allowed, refused.remaining) == (False, 0)
    assert refused.retry_after == pytest.approx(0.01)
    assert refused.reset_after == pytest.approx(2.0)
    clock.advance(0.25)
    later = await limiter.acquire("k")
    assert (later.allowed, later.remaining) == (True, 24)


async def test_requested_tokens_make_one_request_per_minute(
    make_limiter: MakeLimiter, burst: Burst, clock: FakeClock
) -> None:
    # Spring's recipe for 1 request/minute: replenishRate=1, burstCapacity=60, requestedTokens=60.
    limiter = make_limiter(TokenBucket(replenish_rate=1, burst_capacity=60, requested_tokens=60))
    assert await burst(limiter, 5) == 1
    refused = await limiter.acquire("member:1")
    assert refused.retry_after == pytest.approx(60)
    clock.advance(59)
    assert await burst(limiter, 1) == 0
    clock.advance(1)
    assert await burst(limiter, 5) == 1


async def test_cost_takes_that_many_tokens(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(TokenBucket(replenish_rate=10, burst_capacity=10))
    assert (await limiter.acquire("k", cost=4)).remaining == 6
    assert (await limiter.acquire("k", cost=4)).remaining == 2
    refused = await limiter.acquire("k", cost=4)
    assert (refused.allowed, refused.remaining) == (False, 2)
    assert refused.retry_after == pytest.approx(0.2)  # two more tokens at 10/s
    assert (await limiter.acquire("k", cost=2)).remaining == 0
    clock.advance(0.4)
    assert (await limiter.acquire("k", cost=4)).allowed


async def test_keys_do_not_share_a_bucket(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(TokenBucket(replenish_rate=1, burst_capacity=2))
    results = [(await limiter.acquire(key)).allowed for key in ("a", "b", "a", "b", "a", "b")]
    assert results == [True, True, True, True, False, False]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"replenish_rate": 0, "burst_capacity": 1}, "replenish_rate must be positive"),
        ({"replenish_rate": 1, "burst_capacity": 0}, "burst_capacity must be a whole number"),
        ({"replenish_rate": 1, "burst_capacity": 1.5}, "burst_capacity must be a whole number"),
        ({"replenish_rate": 1, "burst_capacity": 10, "requested_tokens": 11}, "raise burst_capacity"),
    ],
)
def test_impossible_parameters_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TokenBucket(**kwargs)  # type: ignore[arg-type]


def test_advertised_policy_is_the_burst_over_its_refill_time() -> None:
    bucket = TokenBucket(replenish_rate=100, burst_capacity=200)
    assert (bucket.quota, bucket.window) == (200, 2.0)
