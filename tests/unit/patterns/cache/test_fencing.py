"""The stale-set race: a fill that loaded before an invalidation must not land after it."""

from __future__ import annotations

import asyncio

import msgspec

from bookvault.patterns.cache import Cache, CachePolicy, MemoryBackend
from bookvault.patterns.clock import FakeClock


class Book(msgspec.Struct, frozen=True):
    id: int
    title: str


OLD, NEW = Book(1, "Dune"), Book(1, "Dune (revised)")


class Table:
    """One row; loads read it, then wait at `gate` (a slow query)."""

    def __init__(self) -> None:
        self.row = OLD
        self.loads = 0
        self.read = asyncio.Event()
        self.gate = asyncio.Event()

    async def load(self) -> Book | None:
        self.loads += 1
        row = self.row
        self.read.set()
        await self.gate.wait()
        return row


def make(backend: MemoryBackend, clock: FakeClock) -> Cache[Book]:
    return Cache("books", Book, backend, policy=CachePolicy(ttl=60, jitter=0), clock=clock)


async def test_a_fill_that_started_before_an_invalidation_is_refused(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    reader_cache, writer_cache = make(backend, clock), make(backend, clock)
    table = Table()
    reader = asyncio.create_task(reader_cache.get_or_load("1", table.load))
    await table.read.wait()  # the reader has the old row in hand
    table.row = NEW  # the writer commits ...
    await writer_cache.invalidate("1")  # ... then invalidates
    table.gate.set()
    assert await reader == OLD  # the reader's own answer was right when it asked
    assert reader_cache.stats().fill_rejections == 1
    assert await backend.get("books", "1") is None  # but it did not resurrect OLD
    assert await writer_cache.get_or_load("1", table.load) == NEW


async def test_a_fill_that_started_before_a_write_through_is_refused(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    reader_cache, writer_cache = make(backend, clock), make(backend, clock)
    table = Table()
    reader = asyncio.create_task(reader_cache.get_or_load("1", table.load))
    await table.read.wait()
    table.row = NEW
    await writer_cache.set("1", NEW)
    table.gate.set()
    await reader
    assert await reader_cache.get("1") == NEW


async def test_a_refresh_that_started_before_an_invalidation_is_refused(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    cache = Cache("books", Book, backend, policy=CachePolicy(ttl=60, jitter=0, stale_for=60), clock=clock)
    table = Table()
    table.gate.set()
    await cache.get_or_load("1", table.load)
    table.gate.clear()
    table.read.clear()
    clock.advance(61)  # stale: the next read starts a background refresh
    assert await cache.get_or_load("1", table.load) == OLD
    await table.read.wait()
    table.row = NEW
    await cache.invalidate("1")
    table.gate.set()
    for _ in range(20):
        await asyncio.sleep(0)
    assert cache.stats().fill_rejections == 1
    assert await cache.get_or_load("1", table.load) == NEW


async def test_losing_the_version_refuses_the_fill_instead_of_storing_it(clock: FakeClock) -> None:
    # A backend so small that the version is evicted while the load runs.
    backend = MemoryBackend(maxsize=1, clock=clock)
    cache = make(backend, clock)
    table = Table()
    reader = asyncio.create_task(cache.get_or_load("1", table.load))
    await table.read.wait()
    await backend.claim("other", "key", version="v-other", lease="l", lease_ttl=1)  # evicts our version
    table.gate.set()
    await reader
    assert cache.stats().fill_rejections == 1
