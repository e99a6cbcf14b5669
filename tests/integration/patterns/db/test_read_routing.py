"""Read routing against the session's real primary and streaming replica."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from bookvault.config import Settings, with_database
from bookvault.db.migrations import ensure_database
from bookvault.faults import FaultProxy, Outage
from bookvault.patterns.db import MemoryWritePositions, ReadRouter, RedisWritePositions, ReplicaPolicy

pytestmark = pytest.mark.stack
DATABASE = "routing_test"


async def _wait_until(predicate: object, what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
async def dsns(infra: Settings) -> tuple[str, str]:
    assert infra.database_url is not None
    await ensure_database(infra.database_url, DATABASE)
    primary = with_database(infra.database_url, DATABASE)
    replica = with_database(infra.replica_urls[0], DATABASE)
    conn = await asyncpg.connect(primary)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS notes (id bigint PRIMARY KEY, body text NOT NULL)")
    finally:
        await conn.close()

    async def replica_has_table() -> bool:
        try:
            conn = await asyncpg.connect(replica)
        except (OSError, asyncpg.PostgresError):
            return False
        try:
            return bool(await conn.fetchval("SELECT to_regclass('notes') IS NOT NULL"))
        finally:
            await conn.close()

    await _wait_until(replica_has_table, "the replica to see the table")
    return primary, replica


@pytest.fixture
async def pools(dsns: tuple[str, str]) -> AsyncIterator[tuple[asyncpg.Pool, asyncpg.Pool]]:
    primary = await asyncpg.create_pool(dsns[0], min_size=1, max_size=4)
    replica = await asyncpg.create_pool(dsns[1], min_size=1, max_size=4)
    try:
        yield primary, replica
    finally:
        # Whatever a test did, replay must run again for the rest of the session.
        await replica.execute("SELECT pg_wal_replay_resume()")
        await primary.close()
        await replica.close()


async def test_read_your_writes_holds_while_replay_is_paused(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    primary, replica = pools
    router = ReadRouter(primary, {"replica": replica}, positions=MemoryWritePositions())
    await router.refresh()
    assert router.snapshot().replicas[0]["in_rotation"] is True
    note_id = time.time_ns()

    await replica.execute("SELECT pg_wal_replay_pause()")
    async with router.write(principal="7") as conn:
        await conn.execute("INSERT INTO notes VALUES ($1, 'mine')", note_id)
    await router.refresh()

    # The writer reads its own write (from the primary) ...
    assert await router.fetchval("SELECT body FROM notes WHERE id = $1", note_id, principal="7") == "mine"
    # ... while everyone else keeps reading the (paused, so stale) replica.
    assert await router.fetchval("SELECT body FROM notes WHERE id = $1", note_id, principal="8") is None
    assert await router.fetchval("SELECT body FROM notes WHERE id = $1", note_id) is None
    snapshot = router.snapshot()
    assert snapshot.reads_primary == 1
    assert snapshot.reads_replica == 2
    replica_state = snapshot.replicas[0]
    assert replica_state["lag_bytes"] is not None
    assert replica_state["lag_bytes"] > 0  # the lag metric moved

    await replica.execute("SELECT pg_wal_replay_resume()")

    async def caught_up() -> bool:
        await router.refresh()
        return bool(router.snapshot().replicas[0]["lag_bytes"] == 0)

    await _wait_until(caught_up, "the replica to catch up")
    # Caught up: the writer's reads go back to the replica.
    assert await router.fetchval("SELECT body FROM notes WHERE id = $1", note_id, principal="7") == "mine"
    assert router.snapshot().reads_replica == 3


async def test_a_replica_too_far_behind_leaves_the_rotation_and_comes_back(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    primary, replica = pools
    router = ReadRouter(primary, {"replica": replica}, policy=ReplicaPolicy(max_lag_bytes=0))
    await router.refresh()
    await replica.execute("SELECT pg_wal_replay_pause()")
    await primary.execute("INSERT INTO notes VALUES ($1, 'lagging')", time.time_ns())
    await router.refresh()
    state = router.snapshot().replicas[0]
    assert state["in_rotation"] is False
    assert "behind by" in state["reason"]
    await router.fetchval("SELECT 1")
    assert router.snapshot().reads_primary == 1

    await replica.execute("SELECT pg_wal_replay_resume()")

    async def back() -> bool:
        await router.refresh()
        return bool(router.snapshot().replicas[0]["in_rotation"])

    await _wait_until(back, "the replica to rejoin the rotation")


async def test_replica_down_means_reads_fall_back_to_the_primary(
    dsns: tuple[str, str], pools: tuple[asyncpg.Pool, asyncpg.Pool]
) -> None:
    primary, _ = pools
    replica_port = urlsplit(dsns[1]).port
    assert replica_port is not None
    async with FaultProxy(replica_port) as proxy:
        proxied = urlsplit(dsns[1])._replace(
            netloc=urlsplit(dsns[1]).netloc.replace(f":{replica_port}", f":{proxy.port}")
        )
        replica = await asyncpg.create_pool(proxied.geturl(), min_size=1, max_size=2)
        try:
            router = ReadRouter(primary, {"replica": replica})
            await router.refresh()
            assert await router.fetchval("SELECT 41 + 1") == 42
            assert router.snapshot().reads_replica == 1

            proxy.set(Outage())  # the replica is gone, pooled connections included
            for _ in range(3):
                assert await router.fetchval("SELECT 41 + 1") == 42
            snapshot = router.snapshot()
            assert snapshot.fallbacks >= 1
            assert snapshot.replicas[0]["in_rotation"] is False
            await router.refresh()
            assert (
                "unreachable" in snapshot.replicas[0]["reason"]
                or "unreachable" in (router.snapshot().replicas[0]["reason"])
            )
        finally:
            replica.terminate()


async def test_positions_are_shared_through_redis(infra: Settings) -> None:
    assert infra.redis_url is not None
    client = aioredis.from_url(infra.redis_url)
    try:
        one, two = (
            RedisWritePositions(client, prefix="rw-test"),
            RedisWritePositions(client, prefix="rw-test"),
        )
        principal = f"member-{time.time_ns()}"
        await one.remember(principal, 1000)
        await two.remember(principal, 900)  # never backwards
        assert await two.get(principal) == 1000
        assert await one.get("someone-else") is None
    finally:
        await client.aclose()


async def test_redis_down_routes_the_principal_to_the_primary() -> None:
    client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        positions = RedisWritePositions(client, timeout_s=0.5)
        assert await positions.get("7") == 2**64 - 1  # no replica qualifies
        await positions.remember("7", 5)  # the write succeeded; only the hint is lost
        assert positions.errors == 2
    finally:
        await client.aclose()


async def test_a_write_noted_under_several_keys_routes_reads_bound_to_any_of_them(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    primary, replica = pools
    router = ReadRouter(primary, {"replica": replica}, positions=MemoryWritePositions())
    await router.refresh()
    note_id = time.time_ns()
    query = "SELECT body FROM notes WHERE id = $1"

    await replica.execute("SELECT pg_wal_replay_pause()")
    await primary.execute("INSERT INTO notes VALUES ($1, 'shared')", note_id)
    await router.note_write(primary, ("7", f"note:{note_id}", ""))
    await router.refresh()

    # Reads bound to the writer or to the object see the write (the primary) ...
    assert await router.reader("7").fetchval(query, note_id) == "shared"
    assert await router.reader(f"note:{note_id}").fetchrow(query, note_id) is not None
    # ... and everything else still reads the replica, which has not replayed it.
    assert await router.reader("note:other").fetch(query, note_id) == []
    assert await router.reader(None).fetchval(query, note_id) is None
    snapshot = router.snapshot()
    assert (snapshot.reads_primary, snapshot.reads_replica, snapshot.writes) == (2, 2, 1)
