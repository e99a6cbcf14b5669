"""Two processes, one Redis: invalidation reaches another process's local tier, a
stampede costs at most one load per process, and an acknowledged write-behind write
survives `kill -9` of its writer (and of a flusher mid-apply)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

import msgspec
import pytest
from redis.asyncio import Redis

from bookvault.patterns.cache import (
    Cache,
    LocalPolicy,
    PendingWrite,
    RedisBackend,
    WriteBehindFlusher,
    WriteBehindQueue,
)

pytestmark = pytest.mark.stack


class Book(msgspec.Struct, frozen=True):
    key: str
    title: str


class Peer(Protocol):
    async def ask(self, command: dict[str, Any], wait: float = ...) -> dict[str, Any]: ...
    async def read(self, wait: float = ...) -> dict[str, Any]: ...
    def kill(self) -> None: ...


SpawnPeer = Callable[..., Awaitable[Peer]]
NAMESPACE = "books"


@pytest.fixture
async def backend(redis: Redis, prefix: str) -> AsyncIterator[RedisBackend]:
    backend = RedisBackend(redis, prefix=prefix, health_interval=1.0)
    yield backend
    await backend.aclose()


def db_loader(redis: Redis, prefix: str, key: str) -> Callable[[], Awaitable[Book | None]]:
    async def load() -> Book | None:
        await redis.incr(f"{prefix}:loads")
        title = await redis.hget(f"{prefix}:db", key)
        return None if title is None else Book(key, title.decode() if isinstance(title, bytes) else title)

    return load


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> float:
    """Poll `check` until true; return the seconds it took. Fails after `within`."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > within:
            raise AssertionError(f"not true within {within}s")
        await asyncio.sleep(0.002)
    return time.monotonic() - started


async def test_an_invalidation_evicts_another_processs_local_copy(
    redis: Redis, redis_url: str, prefix: str, backend: RedisBackend, spawn_peer: SpawnPeer
) -> None:
    here = Cache(NAMESPACE, Book, backend, local=LocalPolicy(ttl=60))
    await here.start()
    await redis.hset(f"{prefix}:db", "1", "Dune")
    there = await spawn_peer(redis_url, prefix, NAMESPACE)
    assert (await there.ask({"op": "get", "key": "1"}))["title"] == "Dune"
    served = await there.ask({"op": "get", "key": "1"})
    assert served["stats"]["hits_l1"] == 1  # the peer now answers from its own memory

    # The database changes without an invalidation: the peer's local copy is stale,
    # which is exactly what invalidation is for.
    await redis.hset(f"{prefix}:db", "1", "Dune (revised)")
    assert (await there.ask({"op": "get", "key": "1"}))["title"] == "Dune"

    await here.invalidate("1")  # after the "commit"

    async def peer_sees_new_title() -> bool:
        answer = await there.ask({"op": "get", "key": "1"})
        return bool(answer["title"] == "Dune (revised)")

    took = await eventually(peer_sees_new_title, within=2.0)
    assert took < 2.0
    final = await there.ask({"op": "get", "key": "1"})
    assert final["stats"]["invalidations_received"] >= 1
    await here.aclose()


async def test_1000_concurrent_cold_reads_make_one_load_in_this_process(
    redis: Redis, prefix: str, backend: RedisBackend
) -> None:
    cache = Cache(NAMESPACE, Book, backend, local=LocalPolicy())
    await redis.hset(f"{prefix}:db", "7", "Emma")
    books = await asyncio.gather(
        *(cache.get_or_load("7", db_loader(redis, prefix, "7")) for _ in range(1000))
    )
    assert {b.title if b else None for b in books} == {"Emma"}
    assert int(await redis.get(f"{prefix}:loads") or 0) == 1
    await cache.aclose()


async def test_a_stampede_from_two_processes_loads_at_most_once_per_process(
    redis: Redis, redis_url: str, prefix: str, spawn_peer: SpawnPeer
) -> None:
    await redis.hset(f"{prefix}:db", "9", "Persuasion")
    peers = [await spawn_peer(redis_url, prefix, NAMESPACE) for _ in range(2)]
    command = {"op": "stampede", "key": "9", "n": 1000, "load_seconds": 0.3}
    answers = await asyncio.gather(*(peer.ask(command) for peer in peers))
    for answer in answers:
        assert answer["titles"] == ["Persuasion"]
        assert answer["loads"] <= 1
    total = int(await redis.get(f"{prefix}:loads") or 0)
    assert total <= len(peers)
    assert total == 1  # with the lease, the second process waits for the first one's fill


async def test_an_acknowledged_write_survives_kill_9_of_its_writer(
    redis: Redis, redis_url: str, prefix: str, backend: RedisBackend, spawn_peer: SpawnPeer
) -> None:
    writer = await spawn_peer(redis_url, prefix, NAMESPACE)
    acked = await writer.ask({"op": "write", "key": "3", "title": "Middlemarch"})
    writer.kill()  # SIGKILL, after the acknowledgement, before anything was flushed

    cache = Cache(NAMESPACE, Book, backend)
    assert await cache.get("3") == Book("3", "Middlemarch")  # readers saw it at once
    applied: list[PendingWrite[Book]] = []

    async def apply(batch: Sequence[PendingWrite[Book]]) -> None:
        applied.extend(batch)

    flusher = WriteBehindFlusher(cache, apply, consumer="survivor")
    assert await flusher.flush_once(block=2.0) == 1
    assert [(w.id, w.key, w.value) for w in applied] == [(acked["acked"], "3", Book("3", "Middlemarch"))]
    assert await redis.xlen(flusher.stream) == 0  # acknowledged and removed


async def test_a_batch_a_flusher_died_applying_is_reclaimed_by_another(
    redis: Redis, redis_url: str, prefix: str, backend: RedisBackend, spawn_peer: SpawnPeer
) -> None:
    cache = Cache(NAMESPACE, Book, backend)
    queue = WriteBehindQueue(cache)
    write_id = await queue.write("5", Book("5", "Ivanhoe"))
    doomed = await spawn_peer(redis_url, prefix, NAMESPACE)
    started = await doomed.ask({"op": "flush"})
    assert started == {"applying": [write_id]}
    doomed.kill()  # mid-apply: the entry is delivered to it but never acknowledged

    applied: list[str] = []

    async def apply(batch: Sequence[PendingWrite[Book]]) -> None:
        applied.extend(w.id for w in batch)

    rescuer = WriteBehindFlusher(cache, apply, consumer="rescuer", claim_idle=0.2)
    assert await rescuer.flush_once(block=0.1) == 0  # not new: it was delivered already

    async def reclaimed() -> bool:
        await rescuer.reclaim()
        return bool(applied)

    await eventually(reclaimed, within=5.0)
    assert applied == [write_id]
    assert (await redis.xpending(rescuer.stream, rescuer.group))["pending"] == 0
