"""The stale-set race on real Redis: reproduced with naive cache-aside, prevented by
version fencing.

The race: a reader misses, reads the old row, and is slow; meanwhile a writer
commits the new row and invalidates; then the reader stores the old row. Naive
cache-aside now serves the old row until the TTL, although the write committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest
from redis.asyncio import Redis

from bookvault.patterns.cache import Cache, CachePolicy, RedisBackend

pytestmark = pytest.mark.stack


class Book(msgspec.Struct, frozen=True):
    id: int
    title: str


OLD, NEW = Book(1, "Dune"), Book(1, "Dune (revised)")


class Table:
    """The row, and a slow read: it takes the row, then waits at `gate`."""

    def __init__(self) -> None:
        self.row = OLD
        self.read = asyncio.Event()
        self.gate = asyncio.Event()

    async def slow_load(self) -> Book:
        row = self.row
        self.read.set()
        await self.gate.wait()
        return row

    async def commit(self, row: Book) -> None:
        self.row = row


@pytest.fixture
async def backend(redis: Redis, prefix: str) -> AsyncIterator[RedisBackend]:
    backend = RedisBackend(redis, prefix=prefix)
    yield backend
    await backend.aclose()


async def test_naive_cache_aside_keeps_the_old_row_after_a_committed_write(redis: Redis, prefix: str) -> None:
    key = f"{prefix}:naive:book:1"
    encode, decode = msgspec.msgpack.encode, msgspec.msgpack.Decoder(Book).decode
    table = Table()

    async def naive_get() -> Book:
        cached = await redis.get(key)
        if isinstance(cached, bytes):
            return decode(cached)
        book = await table.slow_load()
        await redis.set(key, encode(book), ex=300)
        return book

    reader = asyncio.create_task(naive_get())
    await table.read.wait()
    await table.commit(NEW)
    await redis.delete(key)  # the writer's invalidation, after its commit
    table.gate.set()
    await reader
    assert await naive_get() == OLD  # stale: the write is lost to readers until the TTL


async def test_fencing_refuses_the_slow_fill_and_the_next_read_sees_the_write(
    redis: Redis, prefix: str, backend: RedisBackend
) -> None:
    reader_side = Cache("books", Book, backend, policy=CachePolicy(ttl=300))
    writer_side = Cache("books", Book, backend, policy=CachePolicy(ttl=300))
    table = Table()

    reader = asyncio.create_task(reader_side.get_or_load("1", table.slow_load))
    await table.read.wait()
    await table.commit(NEW)
    await writer_side.invalidate("1")
    table.gate.set()
    assert await reader == OLD  # it asked before the commit; that answer is fine ...
    assert reader_side.stats().fill_rejections == 1  # ... but it was not stored
    assert await redis.exists(backend.family("books", "1") + ":v") == 0

    async def fast_load() -> Book:
        return table.row

    assert await reader_side.get_or_load("1", fast_load) == NEW
    assert await writer_side.get_or_load("1", fast_load) == NEW


async def test_fencing_also_holds_against_a_write_through(
    redis: Redis, prefix: str, backend: RedisBackend
) -> None:
    cache = Cache("books", Book, backend)
    table = Table()
    reader = asyncio.create_task(cache.get_or_load("1", table.slow_load))
    await table.read.wait()
    await table.commit(NEW)
    await cache.set("1", NEW)
    table.gate.set()
    await reader
    assert await cache.get("1") == NEW
