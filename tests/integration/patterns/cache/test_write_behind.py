"""Write-behind on real Redis, in one process: durable enqueue, immediate visibility,
batched and coalesced application, and the cache settling afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import msgspec
import pytest
from redis.asyncio import Redis

from bookvault.patterns.cache import (
    Cache,
    CacheBackendError,
    CacheConfigError,
    MemoryBackend,
    PendingWrite,
    RedisBackend,
    WriteBehindFlusher,
    WriteBehindQueue,
)

pytestmark = pytest.mark.stack


class Count(msgspec.Struct, frozen=True):
    views: int


@pytest.fixture
async def cache(redis: Redis, prefix: str) -> AsyncIterator[Cache[Count]]:
    backend = RedisBackend(redis, prefix=prefix)
    yield Cache("views", Count, backend)
    await backend.aclose()


class Database:
    def __init__(self) -> None:
        self.rows: dict[str, Count] = {}
        self.batches: list[list[str]] = []
        self.fail = False

    async def apply(self, batch: Sequence[PendingWrite[Count]]) -> None:
        if self.fail:
            raise RuntimeError("database unavailable")
        self.batches.append([w.key for w in batch])
        for write in batch:
            self.rows[write.key] = write.value

    async def load(self, key: str) -> Count | None:
        return self.rows.get(key)


async def test_writes_are_visible_at_once_and_applied_in_one_coalesced_batch(
    cache: Cache[Count], redis: Redis
) -> None:
    queue = WriteBehindQueue(cache)
    for views in range(1, 6):
        await queue.write("book:1", Count(views))
    await queue.write("book:2", Count(40))
    assert await cache.get("book:1") == Count(5)
    assert await redis.xlen(queue.stream) == 6

    db = Database()
    flusher = WriteBehindFlusher(cache, db.apply, consumer="f1")
    assert await flusher.flush_once(block=1.0) == 6
    assert db.batches == [["book:1", "book:2"]]  # one batch, the newest write per key
    assert db.rows == {"book:1": Count(5), "book:2": Count(40)}
    assert await redis.xlen(queue.stream) == 0


async def test_reads_do_not_fill_from_the_database_while_a_write_is_pending(cache: Cache[Count]) -> None:
    db = Database()
    db.rows["book:1"] = Count(1)
    queue = WriteBehindQueue(cache)
    await queue.write("book:1", Count(2))
    await cache.invalidate("book:1")  # the cached copy goes (eviction, a stray invalidation)

    async def load() -> Count | None:
        return await db.load("book:1")

    assert await cache.get_or_load("book:1", load) == Count(1)  # the database is behind ...
    assert cache.stats().fill_rejections == 1  # ... so that is not cached
    await WriteBehindFlusher(cache, db.apply).flush_once(block=1.0)
    assert await cache.get_or_load("book:1", load) == Count(2)
    assert cache.stats().fills == 1


async def test_a_write_enqueued_by_a_writer_that_died_before_staging_invalidates_on_flush(
    cache: Cache[Count], redis: Redis
) -> None:
    await cache.set("book:1", Count(1))
    queue = WriteBehindQueue(cache)
    # The enqueue a writer made just before dying: in the stream, never in the cache.
    await redis.xadd(queue.stream, {"k": "book:1", "v": msgspec.msgpack.encode(Count(2))})
    assert await cache.get("book:1") == Count(1)
    db = Database()
    await WriteBehindFlusher(cache, db.apply).flush_once(block=1.0)
    assert await cache.get("book:1") is None  # dropped, so the next read loads the database

    async def load() -> Count | None:
        return await db.load("book:1")

    assert await cache.get_or_load("book:1", load) == Count(2)


async def test_a_failed_batch_stays_queued_and_poison_goes_to_dead_letters(
    cache: Cache[Count], redis: Redis
) -> None:
    queue = WriteBehindQueue(cache)
    await queue.write("book:1", Count(7))
    db = Database()
    db.fail = True
    flusher = WriteBehindFlusher(cache, db.apply, claim_idle=0.05, max_deliveries=3)
    assert await flusher.flush_once(block=1.0) == 0
    assert flusher.stats.apply_failures == 1
    for _ in range(2):  # redelivered, still failing
        await asyncio.sleep(0.06)
        assert await flusher.reclaim() == 0
    await asyncio.sleep(0.06)
    await flusher.reclaim()  # delivered 3 times: dead-lettered
    assert flusher.stats.dead_lettered == 1
    assert await redis.xlen(flusher.stream) == 0
    assert await redis.xlen(flusher.dead_letters) == 1


async def test_an_enqueue_that_cannot_be_made_durable_raises(redis_url: str) -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0")
    backend = RedisBackend(client, timeout=0.2)
    queue = WriteBehindQueue(Cache("views", Count, backend))
    with pytest.raises(CacheBackendError):
        await queue.write("book:1", Count(1))
    await client.aclose()


def test_write_behind_refuses_a_non_durable_backend() -> None:
    with pytest.raises(CacheConfigError, match="durable"):
        WriteBehindQueue(Cache("views", Count, MemoryBackend()))
