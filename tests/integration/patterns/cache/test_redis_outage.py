"""Redis dies mid-test (a private redis-server, killed with SIGKILL): readers keep
getting correct values from the loader, writers get no errors, and the cache picks
itself up when Redis returns."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec
from redis.asyncio import Redis

from bookvault.patterns.cache import Cache, CachePolicy, LocalPolicy, RedisBackend


class Book(msgspec.Struct, frozen=True):
    id: int
    title: str


class Server(Protocol):
    url: str

    def start(self) -> None: ...
    def kill(self) -> None: ...


class Rows:
    def __init__(self) -> None:
        self.rows = {str(n): Book(n, f"title {n}") for n in range(20)}
        self.loads = 0

    def loader(self, key: str) -> Callable[[], Awaitable[Book | None]]:
        async def load() -> Book | None:
            self.loads += 1
            return self.rows.get(key)

        return load


async def eventually(check: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within}s")
        await asyncio.sleep(0.01)


async def test_reads_stay_correct_while_redis_is_down_and_caching_resumes_after(
    throwaway_redis: Server,
) -> None:
    client = Redis.from_url(throwaway_redis.url)
    backend = RedisBackend(client, timeout=0.2, health_interval=0.5)
    policy = CachePolicy(ttl=300, retry_after=0.2)
    two_tier = Cache("books", Book, backend, policy=policy, local=LocalPolicy(ttl=60))
    shared_only = Cache("books", Book, backend, policy=policy)
    await two_tier.start()
    db = Rows()

    async def read_all(cache: Cache[Book]) -> list[Book | None]:
        return [await cache.get_or_load(k, db.loader(k)) for k in sorted(db.rows)]

    assert await read_all(two_tier) == [db.rows[k] for k in sorted(db.rows)]
    warm_loads = db.loads

    throwaway_redis.kill()
    db.rows["3"] = Book(3, "title 3, revised")  # a write commits ...
    await two_tier.invalidate("3")  # ... and its invalidation fails quietly

    for cache in (two_tier, shared_only):
        assert await read_all(cache) == [db.rows[k] for k in sorted(db.rows)]
    assert db.loads > warm_loads  # answered by the loader, not by an error
    await eventually(lambda: not two_tier.local_live, within=2.0)  # local tier bypassed
    stats = two_tier.stats()
    assert stats.degraded_loads > 0
    assert stats.errors > 0
    assert shared_only.stats().degraded_loads > 0

    throwaway_redis.start()  # back, empty
    await eventually(lambda: two_tier.local_live, within=10.0)
    await asyncio.sleep(policy.retry_after)
    assert await read_all(two_tier) == [db.rows[k] for k in sorted(db.rows)]
    before = db.loads
    assert await read_all(two_tier) == [db.rows[k] for k in sorted(db.rows)]
    assert db.loads == before  # cached again

    await two_tier.aclose()
    await shared_only.aclose()
    await backend.aclose()
    await client.aclose()


async def test_a_dropped_subscription_clears_the_local_tier(throwaway_redis: Server) -> None:
    client = Redis.from_url(throwaway_redis.url)
    backend = RedisBackend(client, health_interval=0.5)
    cache = Cache("books", Book, backend, local=LocalPolicy(ttl=60))
    await cache.start()
    db = Rows()
    await cache.get_or_load("1", db.loader("1"))
    assert cache.stats().local_size == 1
    resets = cache.stats().local_resets

    # Messages published while the subscriber is disconnected are lost; the cache
    # must forget what it holds rather than trust it.
    await client.client_kill_filter(_type="pubsub")
    await eventually(lambda: cache.stats().local_resets > resets, within=5.0)
    assert cache.stats().local_size == 0
    await eventually(lambda: cache.local_live, within=5.0)

    await cache.aclose()
    await backend.aclose()
    await client.aclose()
