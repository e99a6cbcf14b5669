"""When Redis is gone or hangs, the documented failure policy holds, every
failure is counted, and the limiter goes back to Redis once it answers."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from tests.support.redis_server import OwnRedis

from bookvault.patterns.clock import FakeClock
from bookvault.patterns.ratelimit import (
    MemoryBackend,
    OnFailure,
    RateLimiter,
    RedisBackend,
    StorageError,
    StorageTimeout,
    TokenBucket,
    rate_limit_headers,
)

from .conftest import connect

SEED_DEFAULTS = TokenBucket(replenish_rate=100, burst_capacity=200)


@pytest.fixture
async def client(own_redis: OwnRedis) -> Redis:
    return connect(own_redis.url)


async def test_redis_stopped_falls_back_to_a_local_limiter(own_redis: OwnRedis, client: Redis) -> None:
    local_clock = FakeClock()
    limiter = RateLimiter(
        "member", SEED_DEFAULTS, RedisBackend(client), fallback=MemoryBackend(clock=local_clock), cooldown=0
    )
    try:
        before = [await limiter.acquire("member:1") for _ in range(10)]
        assert not any(d.degraded for d in before)

        own_redis.kill()
        during = [await limiter.acquire("member:1") for _ in range(300)]
    finally:
        await client.aclose()

    assert all(d.degraded for d in during)
    assert sum(d.allowed for d in during) == 200, "the local limiter applies the same policy"
    assert (limiter.stats.errors, limiter.stats.degraded) == (300, 300)
    assert isinstance(limiter.last_error, StorageError)
    assert isinstance(limiter.last_error.__cause__, RedisConnectionError | OSError)
    refused = during[-1]
    assert dict(rate_limit_headers(refused))["Retry-After"] == "1"


async def test_redis_stopped_with_fail_open_lets_everything_through(
    own_redis: OwnRedis, client: Redis
) -> None:
    limiter = RateLimiter(
        "member", SEED_DEFAULTS, RedisBackend(client), on_failure=OnFailure.ALLOW, cooldown=0
    )
    own_redis.kill()
    try:
        assert all([(await limiter.acquire("member:1")).allowed for _ in range(500)])
    finally:
        await client.aclose()
    assert limiter.stats.failures == 500


async def test_a_hung_redis_times_out_then_rests_then_recovers(own_redis: OwnRedis, client: Redis) -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        "payments",
        SEED_DEFAULTS,
        RedisBackend(client),
        timeout=0.05,
        on_failure=OnFailure.DENY,
        cooldown=5.0,
        clock=clock,
    )
    try:
        assert not (await limiter.acquire("member:1")).degraded

        own_redis.pause()
        refused = await limiter.acquire("member:1")
        assert (refused.allowed, refused.degraded) == (False, True)
        assert limiter.stats.timeouts == 1
        assert isinstance(limiter.last_error, StorageTimeout)
        # Within the cooldown nobody waits on the hung server again.
        for _ in range(100):
            assert not (await limiter.acquire("member:1")).allowed
        assert (limiter.stats.timeouts, limiter.stats.degraded) == (1, 101)

        own_redis.resume()
        clock.advance(5.0)
        recovered = await limiter.acquire("member:1")
        assert (recovered.allowed, recovered.degraded) == (True, False)
        assert recovered.remaining == 198  # Redis still holds the first decision
    finally:
        await client.aclose()
