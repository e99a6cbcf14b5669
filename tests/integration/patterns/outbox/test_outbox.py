"""The transactional outbox against real PostgreSQL and Redis: commit order with
a late committer, Redis outages, a relay killed with SIGKILL mid-batch, consumer
groups with claiming and an inbox that makes effects happen exactly once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from tests.support.redis_server import redis_client

from bookvault.config import Settings, with_database
from bookvault.db.migrations import ensure_database
from bookvault.patterns.outbox import (
    SCHEMA,
    Delivery,
    PostgresInbox,
    PublishError,
    RedisStreamsPublisher,
    Relay,
    StreamConsumer,
    add_event,
    backlog,
    purge_published,
)

pytestmark = pytest.mark.stack
DATABASE = "outbox_test"


@pytest.fixture(scope="module")
async def dsn(infra: Settings) -> str:
    assert infra.database_url is not None
    await ensure_database(infra.database_url, DATABASE)
    dsn = with_database(infra.database_url, DATABASE)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)
        await conn.execute("CREATE TABLE IF NOT EXISTS effects (aggregate_id text NOT NULL, n int NOT NULL)")
    finally:
        await conn.close()
    return dsn


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=6)
    await pool.execute("TRUNCATE outbox, inbox, effects")
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def redis(infra: Settings) -> AsyncIterator[Any]:
    async with redis_client(infra) as client:
        yield client


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}:"


async def _write(pool: asyncpg.Pool, aggregate: str, n: int, topic: str = "t") -> None:
    async with pool.acquire() as conn, conn.transaction():
        await add_event(conn, topic, "counted", aggregate, json.dumps({"n": n}))


async def _stream(redis: Any, stream: str) -> list[tuple[str, int]]:
    entries = await redis.xrange(stream)
    return [(f[b"aggregate_id"].decode(), json.loads(f[b"payload"])["n"]) for _id, f in entries]


async def test_a_transaction_committing_late_is_waited_for_not_skipped(
    pool: asyncpg.Pool, redis: Any, prefix: str
) -> None:
    relay = Relay(pool, RedisStreamsPublisher(redis, prefix=prefix), batch_size=10)
    early = await pool.acquire()
    try:
        holding = early.transaction()
        await holding.start()
        await add_event(early, "t", "counted", "a", json.dumps({"n": 1}))  # older txid, still open
        await _write(pool, "a", 2)  # newer txid, committed first
        # The watermark stops below the open transaction: nothing passes it.
        assert await relay.drain() == 0
        assert await _stream(redis, f"{prefix}t") == []
        await holding.commit()
    finally:
        await pool.release(early)
    assert await relay.drain() == 2
    assert await _stream(redis, f"{prefix}t") == [("a", 1), ("a", 2)]
    async with pool.acquire() as conn:
        assert (await backlog(conn))[0] == 0


async def test_writes_succeed_while_redis_is_down_and_the_backlog_drains_in_order_after(
    pool: asyncpg.Pool, redis: Any, prefix: str
) -> None:
    dead = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        down = Relay(pool, RedisStreamsPublisher(dead, prefix=prefix), batch_size=7)
        for n in range(30):
            await _write(pool, f"agg-{n % 3}", n)
            if n % 10 == 0:
                with pytest.raises(PublishError):
                    await down.relay_once()
    finally:
        await dead.aclose()
    async with pool.acquire() as conn:
        assert (await backlog(conn))[0] == 30
    up = Relay(pool, RedisStreamsPublisher(redis, prefix=prefix), batch_size=7)
    assert await up.drain() == 30
    async with pool.acquire() as conn:
        assert (await backlog(conn))[0] == 0
    published = await _stream(redis, f"{prefix}t")
    assert sorted(n for _a, n in published) == list(range(30))
    for aggregate in ("agg-0", "agg-1", "agg-2"):
        ns = [n for a, n in published if a == aggregate]
        assert ns == sorted(ns)


_KILLED_RELAY = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    import asyncpg
    import redis.asyncio as aioredis
    from bookvault.patterns.outbox import RedisStreamsPublisher, Relay

    class DiesAfterPublishing(RedisStreamsPublisher):
        async def publish(self, events):
            await super().publish(events)
            os.kill(os.getpid(), signal.SIGKILL)  # published, not yet marked

    async def main():
        pool = await asyncpg.create_pool(sys.argv[1], min_size=1, max_size=1)
        redis = aioredis.from_url(sys.argv[2])
        await Relay(pool, DiesAfterPublishing(redis, prefix=sys.argv[3]), batch_size=int(sys.argv[4])).drain()

    asyncio.run(main())
    """
)


async def test_a_relay_killed_mid_batch_loses_nothing_and_effects_happen_once(
    pool: asyncpg.Pool, redis: Any, prefix: str, dsn: str, infra: Settings
) -> None:
    batch = 8
    for n in range(40):
        await _write(pool, f"agg-{n % 4}", n)
    killed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _KILLED_RELAY, dsn, str(infra.redis_url), prefix, str(batch)],
        capture_output=True,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    stream = f"{prefix}t"
    assert len(await redis.xrange(stream)) == batch  # the killed relay's batch went out
    # A new relay takes over: the unmarked batch goes out again, then the rest.
    relay = Relay(pool, RedisStreamsPublisher(redis, prefix=prefix), batch_size=batch)
    assert await relay.drain() == 40
    messages = await _stream(redis, stream)
    assert len(messages) - 40 <= batch  # redeliveries at most one batch
    assert sorted(set(messages)) == sorted({(f"agg-{n % 4}", n) for n in range(40)})  # 0 lost, 0 unexpected

    inbox = PostgresInbox("counter")

    async def count(delivery: Delivery) -> None:
        async with pool.acquire() as conn, conn.transaction():
            if await inbox.first_time(conn, delivery.event.event_id):
                payload = json.loads(delivery.event.payload)
                await conn.execute(
                    "INSERT INTO effects (aggregate_id, n) VALUES ($1, $2)",
                    delivery.event.aggregate_id,
                    payload["n"],
                )

    consumer = StreamConsumer(redis, stream=stream, topic="t", group="counters", name="c1", handler=count)
    await consumer.ensure_group()
    while await consumer.consume_once():
        pass
    effects = await pool.fetch("SELECT aggregate_id, n FROM effects ORDER BY n")
    assert [(r["aggregate_id"], r["n"]) for r in effects] == [(f"agg-{n % 4}", n) for n in range(40)]
    assert await consumer.lag() == 0


async def test_a_dead_consumers_messages_are_claimed_and_acked_by_another(
    pool: asyncpg.Pool, redis: Any, prefix: str
) -> None:
    for n in range(5):
        await _write(pool, "a", n)
    assert await Relay(pool, RedisStreamsPublisher(redis, prefix=prefix)).drain() == 5
    stream = f"{prefix}t"
    seen: list[tuple[int, bool]] = []

    async def crashes(_delivery: Delivery) -> None:
        raise RuntimeError("consumer died while handling")

    async def records(delivery: Delivery) -> None:
        seen.append((json.loads(delivery.event.payload)["n"], delivery.claimed))

    dying = StreamConsumer(redis, stream=stream, topic="t", group="g", name="dying", handler=crashes)
    await dying.ensure_group()
    await dying.ensure_group()  # idempotent
    with pytest.raises(RuntimeError):
        await dying.consume_once()
    assert await dying.lag() == 5  # delivered to the dead consumer, none acked
    rescuer = StreamConsumer(
        redis, stream=stream, topic="t", group="g", name="rescuer", handler=records, claim_idle_ms=0
    )
    while await rescuer.consume_once():
        pass
    assert seen == [(0, True), (1, True), (2, True), (3, True), (4, True)]
    assert await rescuer.lag() == 0
    # A clean shutdown leaves the group; both hold nothing now.
    assert await rescuer.leave()
    assert await dying.leave()
    assert await redis.xinfo_consumers(stream, "g") == []


async def test_a_consumer_holding_messages_stays_in_the_group_so_they_can_be_claimed(
    pool: asyncpg.Pool, redis: Any, prefix: str
) -> None:
    await _write(pool, "a", 1)
    assert await Relay(pool, RedisStreamsPublisher(redis, prefix=prefix)).drain() == 1

    async def crashes(_delivery: Delivery) -> None:
        raise RuntimeError("stopped while handling")

    stream = f"{prefix}t"
    holder = StreamConsumer(redis, stream=stream, topic="t", group="g", name="holder", handler=crashes)
    await holder.ensure_group()
    with pytest.raises(RuntimeError):
        await holder.consume_once()
    assert not await holder.leave()
    assert [c["name"] for c in await redis.xinfo_consumers(stream, "g")] == [b"holder"]


async def test_published_rows_are_purged_in_bounded_batches(
    pool: asyncpg.Pool, redis: Any, prefix: str
) -> None:
    for n in range(5):
        await _write(pool, "a", n)
    await _write(pool, "b", 99)
    relay = Relay(pool, RedisStreamsPublisher(redis, prefix=prefix), batch_size=5)
    assert await relay.relay_once() == 5  # "b" stays pending
    async with pool.acquire() as conn:
        assert await purge_published(conn, timedelta(hours=1), batch_size=2) == 0  # too recent
        assert await purge_published(conn, timedelta(0), batch_size=2) == 2
        assert await purge_published(conn, timedelta(0), batch_size=2) == 2
        assert await purge_published(conn, timedelta(0), batch_size=2) == 1
        assert await purge_published(conn, timedelta(0), batch_size=2) == 0
        assert (await backlog(conn))[0] == 1  # pending rows are never purged


async def test_handled_event_ids_are_forgotten_per_consumer_in_bounded_batches(pool: asyncpg.Pool) -> None:
    inbox, other = PostgresInbox("counter"), PostgresInbox("other")
    async with pool.acquire() as conn:
        for n in range(3):
            assert await inbox.first_time(conn, f"old-{n}")
            assert await other.first_time(conn, f"old-{n}")
        await conn.execute("UPDATE inbox SET handled_at = now() - interval '8 days'")
        assert await inbox.first_time(conn, "recent")
        assert not await inbox.first_time(conn, "old-0")  # still remembered
        assert await inbox.purge(conn, timedelta(days=7), batch_size=2) == 2
        assert await inbox.purge(conn, timedelta(days=7), batch_size=2) == 1
        assert await inbox.purge(conn, timedelta(days=7), batch_size=2) == 0
        assert not await inbox.first_time(conn, "recent")  # the recent one is kept
        remaining = await conn.fetchval("SELECT count(*) FROM inbox WHERE consumer = 'other'")
        assert remaining == 3  # another consumer's ids are its own


async def test_a_broker_that_never_answers_fails_the_batch_and_frees_the_turn(
    pool: asyncpg.Pool, redis: Any, prefix: str
) -> None:
    class BlackHole:
        async def publish(self, events: Any) -> None:
            await asyncio.Event().wait()  # accepted, never answered

    for n in range(3):
        await _write(pool, "a", n)
    stuck = Relay(pool, BlackHole(), publish_timeout=timedelta(milliseconds=200))
    with pytest.raises(PublishError, match="took over"):
        await stuck.relay_once()
    async with pool.acquire() as conn:
        assert (await backlog(conn))[0] == 3  # nothing marked
    # The failed relay's transaction is over: another relay gets the turn at once.
    assert await Relay(pool, RedisStreamsPublisher(redis, prefix=prefix)).drain() == 3
    assert await _stream(redis, f"{prefix}t") == [("a", 0), ("a", 1), ("a", 2)]


async def test_a_handler_failing_mid_batch_keeps_only_the_rest_pending(
    pool: asyncpg.Pool, redis: Any, prefix: str
) -> None:
    for n in range(5):
        await _write(pool, "a", n)
    assert await Relay(pool, RedisStreamsPublisher(redis, prefix=prefix)).drain() == 5
    handled: list[int] = []

    async def fails_on_the_third(delivery: Delivery) -> None:
        n = json.loads(delivery.event.payload)["n"]
        if n == 2 and not delivery.claimed:
            raise RuntimeError("cannot handle this one now")
        handled.append(n)

    stream = f"{prefix}t"
    consumer = StreamConsumer(
        redis, stream=stream, topic="t", group="g", name="c", handler=fails_on_the_third, claim_idle_ms=0
    )
    await consumer.ensure_group()
    with pytest.raises(RuntimeError):
        await consumer.consume_once()
    assert handled == [0, 1]
    assert await consumer.lag() == 3  # the failed one and those after it, none lost
    while await consumer.consume_once():
        pass
    assert handled == [0, 1, 2, 3, 4]
    assert await consumer.lag() == 0
