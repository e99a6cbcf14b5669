"""The in-process tier over a shared backend: hits, bounds, invalidation, resets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import msgspec

from bookvault.patterns.cache import Cache, CachePolicy, LocalPolicy, MemoryBackend
from bookvault.patterns.clock import FakeClock


class Book(msgspec.Struct, frozen=True):
    id: int
    title: str


class Rows:
    def __init__(self) -> None:
        self.rows: dict[str, Book] = {}
        self.loads = 0

    def loader(self, key: str) -> Callable[[], Awaitable[Book | None]]:
        async def load() -> Book | None:
            self.loads += 1
            return self.rows.get(key)

        return load


def make(
    backend: MemoryBackend, clock: FakeClock, maxsize: int = 100, local_ttl: float = 10.0
) -> Cache[Book]:
    return Cache(
        "books",
        Book,
        backend,
        policy=CachePolicy(ttl=100, jitter=0, early_beta=0),
        local=LocalPolicy(maxsize=maxsize, ttl=local_ttl),
        clock=clock,
    )


async def test_a_second_read_is_served_in_process(backend: MemoryBackend, clock: FakeClock) -> None:
    cache = make(backend, clock)
    db = Rows()
    db.rows["1"] = Book(1, "Dune")
    await cache.get_or_load("1", db.loader("1"))
    await cache.get_or_load("1", db.loader("1"))
    stats = cache.stats()
    assert (stats.misses, stats.hits_l1, stats.hits_l2, stats.local_size) == (1, 1, 0, 1)


async def test_local_entries_live_no_longer_than_the_local_ttl(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    cache = make(backend, clock, local_ttl=10)
    db = Rows()
    db.rows["1"] = Book(1, "Dune")
    await cache.get_or_load("1", db.loader("1"))
    clock.advance(10)
    await cache.get_or_load("1", db.loader("1"))
    assert cache.stats().hits_l2 == 1  # went back to the shared tier, not the loader
    assert db.loads == 1


async def test_the_local_tier_is_bounded(backend: MemoryBackend, clock: FakeClock) -> None:
    cache = make(backend, clock, maxsize=5)
    db = Rows()
    for n in range(8):
        db.rows[str(n)] = Book(n, "t")
        await cache.get_or_load(str(n), db.loader(str(n)))
    stats = cache.stats()
    assert stats.local_size == 5
    assert stats.evictions == 3


async def test_an_invalidation_in_one_process_evicts_the_others(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    here, there = make(backend, clock), make(backend, clock)
    db = Rows()
    db.rows["1"] = Book(1, "Dune")
    assert await there.get_or_load("1", db.loader("1")) == Book(1, "Dune")
    assert await there.get_or_load("1", db.loader("1")) == Book(1, "Dune")  # local hit
    db.rows["1"] = Book(1, "Dune (revised)")
    await here.invalidate("1")
    assert await there.get_or_load("1", db.loader("1")) == Book(1, "Dune (revised)")
    assert there.stats().invalidations_received == 1


class SlowGets(MemoryBackend):
    """Shared-tier GETs wait at `gate`: a reply still in flight."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.gate = asyncio.Event()
        self.gate.set()
        self.reading = asyncio.Event()

    async def get(self, namespace: str, key: str) -> bytes | None:
        value = await super().get(namespace, key)
        self.reading.set()
        await self.gate.wait()
        return value


async def test_a_read_in_flight_during_an_invalidation_does_not_keep_the_old_value(clock: FakeClock) -> None:
    backend = SlowGets(clock)
    here, there = make(backend, clock), make(backend, clock)
    db = Rows()
    db.rows["1"] = Book(1, "Dune")
    await there.get_or_load("1", db.loader("1"))
    clock.advance(10)  # the local copy expired; the next read asks the shared tier
    backend.gate.clear()
    backend.reading.clear()
    reader = asyncio.create_task(there.get_or_load("1", db.loader("1")))
    await backend.reading.wait()  # the old entry is on its way back
    db.rows["1"] = Book(1, "Dune (revised)")
    await here.invalidate("1")  # the message arrives before the reply
    backend.gate.set()
    assert await reader == Book(1, "Dune")  # answered as of when it asked ...
    assert await there.get_or_load("1", db.loader("1")) == Book(1, "Dune (revised)")  # ... not kept


async def test_a_reset_clears_the_local_tier_and_lost_invalidations_bypass_it(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    cache = make(backend, clock)
    db = Rows()
    db.rows["1"] = Book(1, "Dune")
    await cache.get_or_load("1", db.loader("1"))
    local = cache._local
    assert local is not None
    local.reset(live=False)  # what a lost subscription does
    assert not cache.local_live
    assert cache.stats().local_size == 0
    await cache.get_or_load("1", db.loader("1"))
    assert cache.stats().local_size == 0  # nothing is kept while invalidations do not flow
    local.reset(live=True)
    await cache.get_or_load("1", db.loader("1"))
    await cache.get_or_load("1", db.loader("1"))
    assert cache.stats().hits_l1 == 1
