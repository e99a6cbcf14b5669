"""Every algorithm, in memory and in real Redis, admits the same requests.

Redis decides on its own clock, which a test cannot stop, so each row is a
burst at one instant with rates slow enough (or windows long enough) that the
time a burst takes changes nothing. Time-driven behaviour is covered exactly,
with a fake clock, in tests/unit/patterns/ratelimit.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from bookvault.patterns.ratelimit import (
    GCRA,
    Algorithm,
    Backend,
    FixedWindow,
    MemoryBackend,
    RateLimiter,
    RedisBackend,
    SlidingLog,
    SlidingWindow,
    TokenBucket,
)

pytestmark = pytest.mark.stack

HOUR = 3600.0


@dataclass(frozen=True)
class Row:
    algorithm: Algorithm
    # Bounds of the first refusal's retry_after, for a burst of cost-1 requests.
    retry_after: tuple[float, float]
    aligned: bool = False  # windows aligned to the clock: keep the burst off a boundary


TABLE = {
    "fixed-window": Row(FixedWindow(limit=50, window=HOUR), (0.0, HOUR), aligned=True),
    "sliding-window": Row(SlidingWindow(limit=50, window=HOUR), (HOUR / 50, HOUR + HOUR / 50), aligned=True),
    "sliding-log": Row(SlidingLog(limit=50, window=HOUR), (HOUR - 10, HOUR)),
    "token-bucket": Row(TokenBucket(replenish_rate=0.01, burst_capacity=50), (99.0, 100.0)),
    "gcra": Row(GCRA(limit=50, period=HOUR), (HOUR / 50 - 1, HOUR / 50)),
}


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest, prefix: str) -> Backend:
    if request.param == "memory":
        return MemoryBackend()
    client: Redis = request.getfixturevalue("redis_client")
    return RedisBackend(client, prefix=prefix)


async def clear_of_boundary(backend: Backend, window: float, margin: float = 5.0) -> None:
    """Wait (at most `margin` s) if a window boundary is near, on the backend's own clock."""
    if isinstance(backend, RedisBackend):
        seconds, micros = await backend.client.execute_command("TIME")
        now = int(seconds) + int(micros) / 1_000_000
    else:
        now = time.monotonic()
    left = window - now % window
    if left < margin:
        await asyncio.sleep(left + 0.05)


@pytest.mark.parametrize("row", TABLE.values(), ids=TABLE.keys())
async def test_a_burst_admits_exactly_the_quota(backend: Backend, row: Row) -> None:
    limiter = RateLimiter("table", row.algorithm, backend)
    if row.aligned:
        await clear_of_boundary(backend, HOUR)
    decisions = [await limiter.acquire("member:1") for _ in range(80)]

    assert [d.allowed for d in decisions] == [True] * 50 + [False] * 30
    assert [d.remaining for d in decisions[:50]] == list(range(49, -1, -1))
    assert all(d.limit == 50 and not d.degraded for d in decisions)
    refused = decisions[50]
    low, high = row.retry_after
    assert low < refused.retry_after <= high
    assert refused.retry_after <= refused.reset_after
    assert limiter.stats.snapshot() | {"allowed": 50, "denied": 30} == limiter.stats.snapshot()


@pytest.mark.parametrize("row", TABLE.values(), ids=TABLE.keys())
async def test_cost_takes_that_many_units(backend: Backend, row: Row) -> None:
    limiter = RateLimiter("table", row.algorithm, backend)
    if row.aligned:
        await clear_of_boundary(backend, HOUR)
    decisions = [await limiter.acquire("member:1", cost=7) for _ in range(10)]

    assert [d.allowed for d in decisions] == [True] * 7 + [False] * 3
    assert [d.remaining for d in decisions] == [43, 36, 29, 22, 15, 8, 1, 1, 1, 1]
    assert (await limiter.acquire("member:1", cost=1)).remaining == 0
    assert not (await limiter.acquire("member:1", cost=1)).allowed


@pytest.mark.parametrize("row", TABLE.values(), ids=TABLE.keys())
async def test_keys_and_policies_are_independent(backend: Backend, row: Row) -> None:
    first = RateLimiter("first", row.algorithm, backend)
    second = RateLimiter("second", row.algorithm, backend)
    if row.aligned:
        await clear_of_boundary(backend, HOUR)
    for _ in range(50):
        await first.acquire("member:1")
    assert not (await first.acquire("member:1")).allowed
    assert (await first.acquire("member:2")).remaining == 49
    assert (await second.acquire("member:1")).remaining == 49


async def test_spring_one_request_per_minute_recipe(backend: Backend) -> None:
    limiter = RateLimiter(
        "per-minute", TokenBucket(replenish_rate=1, burst_capacity=60, requested_tokens=60), backend
    )
    decisions = [await limiter.acquire("member:1") for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, False, False, False, False]
    assert 59.0 < decisions[1].retry_after <= 60.0
