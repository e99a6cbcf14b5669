"""A decision costs one round trip: a single EVALSHA, keys inside one hash tag,
every key with a TTL."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Connection, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from tests.support.redis_server import OwnRedis

from bookvault.patterns.ratelimit import (
    GCRA,
    Algorithm,
    FixedWindow,
    RateLimiter,
    RatePolicy,
    RedisBackend,
    SlidingLog,
    SlidingWindow,
    TokenBucket,
)
from bookvault.patterns.ratelimit.redis_backend import lua_source

ALGORITHMS: dict[str, Algorithm] = {
    "fixed-window": FixedWindow(limit=20, window=60),
    "sliding-window": SlidingWindow(limit=20, window=60),
    "sliding-log": SlidingLog(limit=20, window=60),
    "token-bucket": TokenBucket(replenish_rate=1, burst_capacity=20),
    "gcra": GCRA(limit=20, period=60),
}


class CountingConnection(Connection):
    """Records the name of every command this client sends."""

    sent: list[str] = []

    async def send_command(self, *args: Any, **kwargs: Any) -> None:
        CountingConnection.sent.append(str(args[0]))
        await super().send_command(*args, **kwargs)


def counting(url: str) -> Redis:
    # from_url, so that the client owns (and closes) its pool.
    return Redis.from_url(url, connection_class=CountingConnection, retry=Retry(NoBackoff(), 0))


@pytest.fixture
async def counting_client(redis_url: str) -> AsyncIterator[Redis]:
    client = counting(redis_url)
    await client.ping()  # connect (and say HELLO) before counting
    CountingConnection.sent.clear()
    try:
        yield client
    finally:
        await client.aclose()


async def evalsha_calls(client: Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {name: int(stats[name]["calls"]) for name in ("cmdstat_evalsha", "cmdstat_eval") if name in stats}


@pytest.mark.stack
@pytest.mark.parametrize("algorithm", ALGORITHMS.values(), ids=ALGORITHMS.keys())
async def test_each_decision_sends_exactly_one_command(
    counting_client: Redis, prefix: str, algorithm: Algorithm
) -> None:
    backend = RedisBackend(counting_client, prefix=prefix)
    limiter = RateLimiter("trips", algorithm, backend)
    await backend.load_scripts()
    CountingConnection.sent.clear()

    for _ in range(30):  # admitted and refused alike
        await limiter.acquire("member:1")

    assert CountingConnection.sent == ["EVALSHA"] * 30


async def test_the_server_runs_one_script_call_per_decision(own_redis: OwnRedis) -> None:
    client = Redis.from_url(own_redis.url, retry=Retry(NoBackoff(), 0))
    try:
        backend = RedisBackend(client)
        await backend.load_scripts()
        await client.config_resetstat()

        for name, algorithm in ALGORITHMS.items():
            limiter = RateLimiter(name, algorithm, backend)
            for _ in range(25):
                await limiter.acquire("member:1")

        assert await evalsha_calls(client) == {"cmdstat_evalsha": 25 * len(ALGORITHMS)}
    finally:
        await client.aclose()


async def test_load_scripts_loads_every_algorithm(own_redis: OwnRedis) -> None:
    client = Redis.from_url(own_redis.url, retry=Retry(NoBackoff(), 0))
    try:
        await RedisBackend(client).load_scripts()
        digests = [
            hashlib.sha1(lua_source(a.script).encode(), usedforsecurity=False).hexdigest()
            for a in ALGORITHMS.values()
        ]
        assert await client.script_exists(*digests) == [True] * len(ALGORITHMS)
    finally:
        await client.aclose()


async def test_a_forgotten_script_costs_one_extra_trip_once(own_redis: OwnRedis) -> None:
    client = counting(own_redis.url)
    try:
        limiter = RateLimiter("trips", TokenBucket(replenish_rate=1, burst_capacity=20), RedisBackend(client))
        await client.script_flush()  # as after a restart or a failover
        CountingConnection.sent.clear()
        first = await limiter.acquire("member:1")
        second = await limiter.acquire("member:1")
        assert CountingConnection.sent == ["EVALSHA", "EVAL", "EVALSHA"]
        assert (first.remaining, second.remaining) == (19, 18)
    finally:
        await client.aclose()


@pytest.mark.stack
@pytest.mark.parametrize("algorithm", ALGORITHMS.values(), ids=ALGORITHMS.keys())
async def test_keys_share_one_hash_tag_and_expire(
    redis_client: Redis, prefix: str, algorithm: Algorithm
) -> None:
    backend = RedisBackend(redis_client, prefix=prefix)
    limiter = RateLimiter("layout", algorithm, backend)
    await limiter.acquire("203.0.113.7")

    keys = [key.decode() async for key in redis_client.scan_iter(match=f"{{{prefix}:*")]
    assert keys == [f"{{{prefix}:layout:203.0.113.7}}:{algorithm.tag}"]
    assert backend.bind(limiter.policy, algorithm).key("203.0.113.7") == keys[0]
    ttl_ms = await redis_client.pttl(keys[0])
    assert 0 < ttl_ms <= 2 * 60_000 + 1, "idle keys must expire on their own"


def test_policy_and_prefix_cannot_break_the_hash_tag() -> None:
    with pytest.raises(ValueError, match="policy name"):
        RatePolicy("a}b", 1, 1.0)
    with pytest.raises(ValueError, match="prefix"):
        RedisBackend(Redis(), prefix="rl{x")
