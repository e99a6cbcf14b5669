"""Processes that share a Redis share one limit: the decision is atomic on the
server and uses the server's clock, so no process can over-admit.

Two clients with separate connection pools stand for two gateway processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bookvault.patterns.ratelimit import (
    GCRA,
    Algorithm,
    FixedWindow,
    RateLimiter,
    RedisBackend,
    SlidingLog,
    SlidingWindow,
    TokenBucket,
)

from .conftest import connect

pytestmark = pytest.mark.stack

HOUR = 3600.0
LIMIT = 1000

SHARED: dict[str, Algorithm] = {
    "fixed-window": FixedWindow(limit=LIMIT, window=HOUR),
    "sliding-window": SlidingWindow(limit=LIMIT, window=HOUR),
    "sliding-log": SlidingLog(limit=LIMIT, window=HOUR),
    "token-bucket": TokenBucket(replenish_rate=0.01, burst_capacity=LIMIT),
    "gcra": GCRA(limit=LIMIT, period=HOUR),
}


@pytest.fixture
async def two_processes(redis_url: str) -> AsyncIterator[tuple[Redis, Redis]]:
    first, second = connect(redis_url), connect(redis_url)
    try:
        yield first, second
    finally:
        await first.aclose()
        await second.aclose()


async def hammer(limiter: RateLimiter, requests: int, concurrency: int) -> int:
    """Send `requests` decisions for one member from `concurrency` tasks; count admits."""
    admitted = 0

    async def worker(n: int) -> None:
        nonlocal admitted
        for _ in range(n):
            # Not `admitted += await ...`: that reads `admitted` before awaiting.
            decision = await limiter.acquire("member:1")
            admitted += decision.allowed

    share, extra = divmod(requests, concurrency)
    await asyncio.gather(*(worker(share + (i < extra)) for i in range(concurrency)))
    return admitted


async def server_seconds(client: Redis) -> float:
    seconds, micros = await client.time()
    return seconds + micros / 1_000_000


@pytest.mark.parametrize("algorithm", SHARED.values(), ids=SHARED.keys())
async def test_two_processes_admit_the_limit_once(
    two_processes: tuple[Redis, Redis], prefix: str, algorithm: Algorithm
) -> None:
    first, second = two_processes
    if isinstance(algorithm, FixedWindow | SlidingWindow):
        # Keep the run off an hour boundary of the server's clock (waits at most 10 s).
        left = HOUR - await server_seconds(first) % HOUR
        if left < 10:
            await asyncio.sleep(left + 0.05)
    # A generous timeout: this test is about accuracy, not latency, on a busy machine.
    limiters = [
        RateLimiter("shared", algorithm, RedisBackend(c, prefix=prefix), timeout=10) for c in (first, second)
    ]

    admitted = await asyncio.gather(*(hammer(limiter, 1500, concurrency=25) for limiter in limiters))

    assert abs(sum(admitted) - LIMIT) <= 0.02 * LIMIT
    assert all(n > 0 for n in admitted), "both processes took part"
    assert all(limiter.stats.failures == 0 for limiter in limiters)


async def test_a_member_bursting_through_every_process_gets_the_burst_plus_refill(
    two_processes: tuple[Redis, Redis], prefix: str
) -> None:
    # Seed 002's defaults: 100/s, burst 200. 1000 requests across both processes.
    bucket = TokenBucket(replenish_rate=100, burst_capacity=200)
    limiters = [
        RateLimiter("member", bucket, RedisBackend(c, prefix=prefix), timeout=10) for c in two_processes
    ]
    started = time.monotonic()
    admitted = await asyncio.gather(*(hammer(limiter, 500, concurrency=25) for limiter in limiters))
    elapsed = time.monotonic() - started

    # Refill during the burst is bounded by the time it took, measured around it.
    assert 200 <= sum(admitted) <= 200 + 100 * elapsed + 1
