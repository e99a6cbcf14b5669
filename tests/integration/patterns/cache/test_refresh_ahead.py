"""Refresh-ahead (`Cache.refresh`) on real Redis, with a fake clock: a refreshed key
outlives its first TTL, and a refresh that loaded before an invalidation is refused."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from bookvault.patterns.cache import Cache, CachePolicy, RedisBackend
from bookvault.patterns.clock import FakeClock

pytestmark = pytest.mark.stack

POLICY = CachePolicy(ttl=60.0, jitter=0.0, early_beta=0.0)


async def test_a_refreshed_key_is_still_fresh_after_its_first_ttl(redis: Redis, prefix: str) -> None:
    clock = FakeClock()
    cache: Cache[str] = Cache("shelf", str, RedisBackend(redis, prefix=prefix), policy=POLICY, clock=clock)
    versions = iter(["first", "second"])

    async def load() -> str:
        return next(versions)

    assert await cache.get_or_load("k", load) == "first"
    clock.advance(50)
    await cache.refresh("k", load)
    clock.advance(30)  # 80 s after the first fill, 30 s after the refresh
    assert await cache.get("k") == "second"


async def test_an_absent_key_is_loaded_by_refresh(redis: Redis, prefix: str) -> None:
    cache: Cache[str] = Cache(
        "shelf", str, RedisBackend(redis, prefix=prefix), policy=POLICY, clock=FakeClock()
    )

    async def load() -> str:
        return "loaded"

    await cache.refresh("k", load)
    assert await cache.get("k") == "loaded"


async def test_a_refresh_overtaken_by_an_invalidation_is_not_stored(redis: Redis, prefix: str) -> None:
    cache: Cache[str] = Cache(
        "shelf", str, RedisBackend(redis, prefix=prefix), policy=POLICY, clock=FakeClock()
    )
    row = "old"
    loaded, release = asyncio.Event(), asyncio.Event()

    async def load() -> str:
        return row

    async def slow_load() -> str:
        seen = row
        loaded.set()
        await release.wait()  # the old row is in hand; the writer commits meanwhile
        return seen

    await cache.get_or_load("k", load)
    refreshing = asyncio.create_task(cache.refresh("k", slow_load))
    await loaded.wait()
    row = "new"
    await cache.invalidate("k")
    release.set()
    await refreshing
    assert await cache.get("k") is None  # the old row was refused...
    assert await cache.get_or_load("k", load) == "new"  # ...so the next read loads the new one
