"""When the shared tier fails, readers still get correct values and no errors."""

from __future__ import annotations

import asyncio
import logging

import msgspec
import pytest

from bookvault.patterns.cache import Cache, CacheBackendError, CachePolicy, MemoryBackend
from bookvault.patterns.clock import FakeClock


class Book(msgspec.Struct, frozen=True):
    id: int
    title: str


class Outage(MemoryBackend):
    """A memory backend that can be switched off: every call then fails."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise CacheBackendError("connection refused")

    async def get(self, namespace: str, key: str) -> bytes | None:
        self._check()
        return await super().get(namespace, key)

    async def invalidate(self, namespace: str, key: str, *, version: str) -> None:
        self._check()
        await super().invalidate(namespace, key, version=version)

    async def write(self, namespace: str, key: str, data: bytes, ttl: float, *, version: str) -> None:
        self._check()
        await super().write(namespace, key, data, ttl, version=version)


def make(backend: MemoryBackend, clock: FakeClock) -> Cache[Book]:
    return Cache("books", Book, backend, policy=CachePolicy(ttl=100, jitter=0, retry_after=1.0), clock=clock)


async def test_reads_fall_through_to_the_loader_while_the_shared_tier_is_down(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    backend = Outage(clock)
    cache = make(backend, clock)
    rows = {"1": Book(1, "Dune")}
    loads = 0

    async def load() -> Book | None:
        nonlocal loads
        loads += 1
        return rows["1"]

    await cache.get_or_load("1", load)
    backend.down = True
    clock.advance(200)  # expired: the next read needs the shared tier
    rows["1"] = Book(1, "Dune (revised)")
    with caplog.at_level(logging.WARNING):
        results = [await cache.get_or_load("1", load) for _ in range(5)]
    assert results == [Book(1, "Dune (revised)")] * 5
    stats = cache.stats()
    assert stats.degraded_loads == 5
    assert stats.errors == 1  # skipped for retry_after after one failure, not retried per read
    assert sum("shared tier failing" in r.message for r in caplog.records) == 1
    backend.down = False
    clock.advance(1.0)
    await cache.get_or_load("1", load)
    await cache.get_or_load("1", load)
    assert cache.stats().hits_l2 == 1  # caching again


async def test_an_invalidation_that_failed_is_replayed_and_the_stale_entry_is_never_served(
    clock: FakeClock,
) -> None:
    backend = Outage(clock)
    cache = make(backend, clock)
    rows = {"1": Book(1, "Dune")}

    async def load() -> Book | None:
        return rows["1"]

    await cache.get_or_load("1", load)
    rows["1"] = Book(1, "Dune (revised)")
    backend.down = True
    await cache.invalidate("1")  # no error for the writer, remembered instead
    backend.down = False  # back, but still holding the old entry
    assert await backend.get("books", "1") is not None
    assert await cache.get_or_load("1", load) == Book(1, "Dune (revised)")  # bypassed for this key
    for _ in range(20):
        await asyncio.sleep(0)  # the replay runs
    assert await backend.get("books", "1") is None
    assert await cache.get_or_load("1", load) == Book(1, "Dune (revised)")
    assert not cache._unapplied
