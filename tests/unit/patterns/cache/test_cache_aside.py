"""Cache-aside through `get_or_load` on the memory backend, with time from a FakeClock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from bookvault.patterns.cache import Cache, CacheConfigError, CachePolicy, MemoryBackend
from bookvault.patterns.clock import FakeClock


class Book(msgspec.Struct, frozen=True):
    id: int
    title: str


class Source:
    """The 'database': rows by key, and how many times it was asked."""

    def __init__(self, **rows: Book | None) -> None:
        self.rows = dict(rows)
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.load_time = 0.0
        self.clock: FakeClock | None = None

    def loader(self, key: str) -> Callable[[], Awaitable[Book | None]]:
        async def load() -> Book | None:
            self.calls += 1
            if self.clock is not None:
                self.clock.advance(self.load_time)
            if self.gate is not None:
                await self.gate.wait()
            return self.rows.get(key)

        return load


DUNE = Book(1, "Dune")
EMMA = Book(2, "Emma")


def make(backend: MemoryBackend, clock: FakeClock, **policy: float | None) -> Cache[Book]:
    settings: dict[str, Any] = {"ttl": 100.0, "jitter": 0.0, "early_beta": 0.0, **policy}
    return Cache("books", Book, backend, policy=CachePolicy(**settings), clock=clock, rng=random.Random(1))


async def drain() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_miss_loads_once_then_hits_until_the_ttl(backend: MemoryBackend, clock: FakeClock) -> None:
    cache = make(backend, clock)
    db = Source(k1=DUNE)
    assert await cache.get_or_load("k1", db.loader("k1")) == DUNE
    assert await cache.get_or_load("k1", db.loader("k1")) == DUNE
    assert db.calls == 1
    clock.advance(99.9)
    assert await cache.get_or_load("k1", db.loader("k1")) == DUNE
    assert db.calls == 1
    db.rows["k1"] = EMMA
    clock.advance(0.2)
    assert await cache.get_or_load("k1", db.loader("k1")) == EMMA
    assert db.calls == 2
    stats = cache.stats()
    assert (stats.misses, stats.hits_l2, stats.fills) == (2, 2, 2)


async def test_values_come_back_as_the_callers_type(backend: MemoryBackend, clock: FakeClock) -> None:
    cache = make(backend, clock)
    await cache.get_or_load("k1", Source(k1=DUNE).loader("k1"))
    got = await cache.get("k1")
    assert isinstance(got, Book)
    assert got == DUNE


async def test_json_serializer_preserves_types_too(backend: MemoryBackend, clock: FakeClock) -> None:
    cache = Cache("json-books", Book, backend, serializer="json", clock=clock)
    await cache.set("k1", DUNE)
    assert await cache.get("k1") == DUNE
    raw = await backend.get("json-books", "k1")
    assert raw is not None
    assert b'"Dune"' in raw


async def test_jittered_ttls_expire_spread_over_the_jitter_window(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    cache = make(backend, clock, jitter=0.2)
    db = Source(**{f"k{n}": Book(n, "t") for n in range(200)})
    for n in range(200):
        await cache.get_or_load(f"k{n}", db.loader(f"k{n}"))
    clock.advance(79.99)
    assert all([await cache.get(f"k{n}") is not None for n in range(200)])
    clock.advance(20.0)  # t = 100: about half expired
    alive = sum([await cache.get(f"k{n}") is not None for n in range(200)])
    assert 60 < alive < 140
    clock.advance(20.02)  # past 120: all expired
    assert all([await cache.get(f"k{n}") is None for n in range(200)])


async def test_misses_are_cached_for_their_own_shorter_ttl(backend: MemoryBackend, clock: FakeClock) -> None:
    cache = make(backend, clock, negative_ttl=5.0)
    db = Source()
    assert await cache.get_or_load("ghost", db.loader("ghost")) is None
    assert await cache.get_or_load("ghost", db.loader("ghost")) is None
    assert db.calls == 1
    assert cache.stats().negative_hits == 1
    db.rows["ghost"] = DUNE
    clock.advance(5.0)
    assert await cache.get_or_load("ghost", db.loader("ghost")) == DUNE
    assert db.calls == 2


async def test_misses_are_not_cached_when_negative_caching_is_off(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    cache = make(backend, clock, negative_ttl=None)
    db = Source()
    await cache.get_or_load("ghost", db.loader("ghost"))
    await cache.get_or_load("ghost", db.loader("ghost"))
    assert db.calls == 2


async def test_a_failing_loader_reaches_the_caller_and_nothing_is_cached(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    cache = make(backend, clock)

    async def broken() -> Book | None:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError, match="database down"):
        await cache.get_or_load("k1", broken)
    db = Source(k1=DUNE)
    assert await cache.get_or_load("k1", db.loader("k1")) == DUNE  # the lease was given back
    assert db.calls == 1


async def test_1000_concurrent_cold_reads_make_one_load(backend: MemoryBackend, clock: FakeClock) -> None:
    cache = make(backend, clock)
    db = Source(k1=DUNE)
    db.gate = asyncio.Event()
    readers = [asyncio.create_task(cache.get_or_load("k1", db.loader("k1"))) for _ in range(1000)]
    await drain()
    db.gate.set()
    assert await asyncio.gather(*readers) == [DUNE] * 1000
    assert db.calls == 1
    assert cache.stats().coalesced == 999


async def test_xfetch_refreshes_in_the_background_near_expiry(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    cache = make(backend, clock, early_beta=1.0)
    db = Source(k1=DUNE)
    db.clock, db.load_time = clock, 2.0  # each load takes 2 s: delta = 2
    await cache.get_or_load("k1", db.loader("k1"))  # expires 100 s after the load ended
    clock.advance(99.0)  # 1 s left: P(early) = exp(-1/2) per read
    db.rows["k1"] = EMMA
    served = [await cache.get_or_load("k1", db.loader("k1")) for _ in range(10)]
    await drain()
    assert db.calls == 2  # exactly one refresh, however many reads saw it due
    assert served[0] == DUNE  # readers are not made to wait for it
    assert await cache.get_or_load("k1", db.loader("k1")) == EMMA
    assert cache.stats().early_refreshes == 1


async def test_xfetch_does_not_refresh_far_from_expiry(backend: MemoryBackend, clock: FakeClock) -> None:
    cache = make(backend, clock, early_beta=1.0)
    db = Source(k1=DUNE)
    db.clock, db.load_time = clock, 2.0
    await cache.get_or_load("k1", db.loader("k1"))
    clock.advance(50.0)
    for _ in range(1000):
        await cache.get_or_load("k1", db.loader("k1"))
    await drain()
    assert db.calls == 1
    assert cache.stats().early_refreshes == 0


async def test_stale_entries_are_served_while_one_refresh_runs(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    cache = make(backend, clock, stale_for=30.0)
    db = Source(k1=DUNE)
    await cache.get_or_load("k1", db.loader("k1"))
    db.rows["k1"] = EMMA
    db.gate = asyncio.Event()
    clock.advance(110.0)  # past the TTL, within the stale window
    assert await cache.get_or_load("k1", db.loader("k1")) == DUNE
    assert await cache.get_or_load("k1", db.loader("k1")) == DUNE
    db.gate.set()
    await drain()
    assert db.calls == 2
    assert await cache.get_or_load("k1", db.loader("k1")) == EMMA
    assert cache.stats().stale_serves == 2


async def test_a_lease_makes_other_processes_wait_for_one_fill(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    # Two caches on one backend stand for two processes (each has its own single-flight).
    first, second = make(backend, clock), make(backend, clock)
    db = Source(k1=DUNE)
    db.gate = asyncio.Event()
    leader = asyncio.create_task(first.get_or_load("k1", db.loader("k1")))
    await drain()
    follower = asyncio.create_task(second.get_or_load("k1", db.loader("k1")))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    db.gate.set()
    assert await leader == DUNE
    assert await follower == DUNE
    assert db.calls == 1
    assert second.stats().lease_waits == 1
    assert second.stats().hits_l2 == 1


async def test_a_lease_holder_that_never_fills_delays_others_only_until_lease_wait(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    first, second = make(backend, clock, lease_wait=0.5), make(backend, clock, lease_wait=0.5)
    stuck = Source(k1=DUNE)
    stuck.gate = asyncio.Event()  # never released
    leader = asyncio.create_task(first.get_or_load("k1", stuck.loader("k1")))
    await drain()
    db = Source(k1=DUNE)
    started = clock.monotonic()
    assert await second.get_or_load("k1", db.loader("k1")) == DUNE
    assert 0.5 <= clock.monotonic() - started < 0.6
    assert second.stats().lease_timeouts == 1
    leader.cancel()


async def test_get_never_loads(backend: MemoryBackend, clock: FakeClock) -> None:
    cache = make(backend, clock)
    assert await cache.get("k1") is None
    await cache.set("k1", DUNE)
    assert await cache.get("k1") == DUNE


async def test_a_cancelled_first_reader_does_not_cost_a_second_load(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    cache = make(backend, clock)
    db = Source(k1=DUNE)
    db.gate = asyncio.Event()
    first = asyncio.create_task(cache.get_or_load("k1", db.loader("k1")))
    await drain()
    others = [asyncio.create_task(cache.get_or_load("k1", db.loader("k1"))) for _ in range(10)]
    await drain()
    first.cancel()
    await drain()
    db.gate.set()
    assert await asyncio.gather(*others) == [DUNE] * 10
    assert db.calls == 1  # the load ran on for the readers still waiting


async def test_a_per_call_ttl_overrides_the_policy(backend: MemoryBackend, clock: FakeClock) -> None:
    cache = make(backend, clock)
    db = Source(k1=DUNE)
    await cache.get_or_load("k1", db.loader("k1"), ttl=5)
    clock.advance(5)
    await cache.get_or_load("k1", db.loader("k1"), ttl=5)
    assert db.calls == 2
    with pytest.raises(CacheConfigError, match="ttl"):
        await cache.get_or_load("k2", db.loader("k2"), ttl=0)
    assert db.calls == 2  # refused before loading
