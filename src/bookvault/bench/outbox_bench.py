"""Transactional outbox: relay throughput and end-to-end event lag, in one run.

    python -m bookvault.bench.outbox_bench [--database-url DSN] [--redis-url URL]
                                           [--events N] [--rate R] [--seconds S]

- relay throughput: N events already committed (10 per business transaction,
  over 100 aggregates) drained by one Relay to Redis Streams, per batch size;
  events/s is wall clock for the whole drain, each batch one PostgreSQL
  transaction (FOR UPDATE SKIP LOCKED, publish pipelined, mark published).
- end-to-end lag: writers commit events open-loop at R events/s for S seconds
  while a relay (polling every 100 ms when idle, as the workers do) and a
  consumer group reader run; lag is from the intended commit time (not the
  actual one, so a stalled writer is not hidden) to the consumer having the
  event, p50/p99/max.
- write cost: the same single-row business transaction with and without its
  outbox insert, sequential, to show what the event costs the writer.

Without URLs, a throwaway PostgreSQL and Redis are started with the stack's own
code in a temporary directory, and stopped at the end. Nothing is asserted:
the numbers are for BENCHMARKS.md, measured on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from bookvault.config import load_settings, with_database
from bookvault.db.migrations import ensure_database
from bookvault.patterns.outbox import (
    SCHEMA,
    Delivery,
    RedisStreamsPublisher,
    Relay,
    StreamConsumer,
    add_event,
)

__all__ = ["main"]

DATABASE = "outbox_bench"
_BENCH_PORTS = {"postgres_port": 58432, "replica_port": 58433, "redis_port": 58379}
_RELAY_POLL_S = 0.1


@contextlib.contextmanager
def _throwaway_infra() -> Iterator[tuple[str, str]]:
    from bookvault.stack.infra import prepare, start_infrastructure
    from bookvault.stack.ports import free_port_block
    from bookvault.stack.supervisor import Supervisor

    state_dir = Path(tempfile.mkdtemp(prefix="bookvault-outbox-bench-"))
    state_dir.chmod(0o755)  # as root, PostgreSQL runs as `postgres` and must reach it
    supervisor = Supervisor()
    try:
        base = load_settings(
            {"BOOKVAULT_CONFIG": os.devnull}, state_dir=state_dir, **free_port_block(_BENCH_PORTS)
        )
        settings, paths = prepare(base)
        settings = start_infrastructure(settings, paths, supervisor)
        if settings.database_url is None or settings.redis_url is None:
            raise RuntimeError("the throwaway PostgreSQL or Redis did not start")
        yield settings.database_url, settings.redis_url
    finally:
        supervisor.stop_all()
        shutil.rmtree(state_dir, ignore_errors=True)


async def _reset(pool: asyncpg.Pool) -> None:
    await pool.execute("TRUNCATE outbox, inbox")


async def _fill(pool: asyncpg.Pool, events: int, per_tx: int = 10) -> None:
    payload = json.dumps({"amount_cents": 1250, "note": "x" * 64})

    async def writer(start: int, stop: int) -> None:
        async with pool.acquire() as conn:
            for first in range(start, stop, per_tx):
                async with conn.transaction():
                    for n in range(first, min(first + per_tx, stop)):
                        await add_event(conn, "bench", "payment.recorded", f"member-{n % 100}", payload)

    step = events // 8
    await asyncio.gather(*(writer(i * step, events if i == 7 else (i + 1) * step) for i in range(8)))


async def relay_throughput(pool: asyncpg.Pool, redis: Any, events: int, batch: int) -> dict[str, Any]:
    await _reset(pool)
    prefix = f"bench-{uuid.uuid4().hex[:6]}:"
    await _fill(pool, events)
    relay = Relay(pool, RedisStreamsPublisher(redis, prefix=prefix), batch_size=batch)
    started = time.perf_counter()
    done = await relay.drain(max_batches=10**9)
    elapsed = time.perf_counter() - started
    await redis.delete(f"{prefix}bench")
    return {"scenario": "relay drain", "batch": batch, "events": done, "events_s": done / elapsed}


async def end_to_end_lag(
    pool: asyncpg.Pool, redis: Any, rate: float, seconds: float, batch: int
) -> dict[str, Any]:
    await _reset(pool)
    prefix = f"bench-{uuid.uuid4().hex[:6]}:"
    publisher = RedisStreamsPublisher(redis, prefix=prefix)
    relay = Relay(pool, publisher, batch_size=batch)
    lags_ms: list[float] = []
    total = int(rate * seconds)

    async def record(delivery: Delivery) -> None:
        intended = json.loads(delivery.event.payload)["intended"]
        lags_ms.append((time.time() - intended) * 1000)

    consumer = StreamConsumer(
        redis, stream=publisher.stream("bench"), topic="bench", group="bench", name="c", handler=record
    )
    await consumer.ensure_group()
    stop = asyncio.Event()

    async def relaying() -> None:
        while not stop.is_set():
            if await relay.drain() == 0:
                await asyncio.sleep(_RELAY_POLL_S)

    async def consuming() -> None:
        while len(lags_ms) < total:
            await consumer.consume_once(block_ms=100)

    async def write(n: int, intended: float) -> None:
        async with pool.acquire() as conn, conn.transaction():
            body = json.dumps({"intended": intended})
            await add_event(conn, "bench", "payment.recorded", f"member-{n % 100}", body)

    background = [asyncio.create_task(relaying()), asyncio.create_task(consuming())]
    writes: list[asyncio.Task[None]] = []
    start_wall, start = time.time(), time.perf_counter()
    for n in range(total):
        due = n / rate
        delay = due - (time.perf_counter() - start)
        if delay > 0:
            await asyncio.sleep(delay)
        writes.append(asyncio.create_task(write(n, start_wall + due)))
    await asyncio.gather(*writes)
    await background[1]
    stop.set()
    await background[0]
    await redis.delete(publisher.stream("bench"))
    lags_ms.sort()
    return {
        "scenario": f"lag at {rate:g} ev/s",
        "batch": batch,
        "events": len(lags_ms),
        "events_s": len(lags_ms) / (time.perf_counter() - start),
        "p50_ms": lags_ms[len(lags_ms) // 2],
        "p99_ms": lags_ms[min(len(lags_ms) - 1, int(len(lags_ms) * 0.99))],
        "max_ms": lags_ms[-1],
    }


async def write_cost(pool: asyncpg.Pool, rounds: int = 500, repeats: int = 4) -> list[dict[str, Any]]:
    """Alternating runs with and without the event (so drift in the machine's load
    hits both alike); each row is the median run."""
    await pool.execute("CREATE TABLE IF NOT EXISTS bench_payments (id bigserial PRIMARY KEY, amount bigint)")
    runs: dict[bool, list[float]] = {False: [], True: []}
    async with pool.acquire() as conn:
        for _ in range(repeats):
            for with_event in (False, True):
                started = time.perf_counter()
                for _ in range(rounds):
                    async with conn.transaction():
                        await conn.execute("INSERT INTO bench_payments (amount) VALUES (1250)")
                        if with_event:
                            await add_event(
                                conn, "bench", "payment.recorded", "member-1", '{"amount_cents": 1250}'
                            )
                runs[with_event].append(time.perf_counter() - started)
    await _reset(pool)
    rows = []
    for with_event, elapsed in runs.items():
        median = statistics.median(elapsed)
        rows.append(
            {
                "scenario": "payment tx + outbox row" if with_event else "payment tx alone",
                "events": rounds * repeats,
                "events_s": rounds / median,
                "tx_ms": median / rounds * 1000,
            }
        )
    return rows


@contextlib.asynccontextmanager
async def _clients(database_url: str, redis_url: str) -> AsyncIterator[tuple[asyncpg.Pool, Any]]:
    await ensure_database(database_url, DATABASE)
    pool = await asyncpg.create_pool(with_database(database_url, DATABASE), min_size=2, max_size=12)
    redis = aioredis.from_url(redis_url)
    try:
        await pool.execute(SCHEMA)
        yield pool, redis
    finally:
        await redis.aclose()
        await pool.close()


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render(rows: list[dict[str, Any]]) -> str:
    header = "| scenario | batch | events | events/s | tx ms | lag p50 ms | lag p99 ms | lag max ms |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        cells = [
            row["scenario"],
            _fmt(row.get("batch")),
            _fmt(row["events"]),
            _fmt(row["events_s"], 0),
            _fmt(row.get("tx_ms"), 2),
            _fmt(row.get("p50_ms")),
            _fmt(row.get("p99_ms")),
            _fmt(row.get("max_ms")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def run(database_url: str, redis_url: str, events: int, rate: float, seconds: float) -> str:
    rows: list[dict[str, Any]] = []
    async with _clients(database_url, redis_url) as (pool, redis):
        for batch in (100, 500, 1000):
            rows.append(await relay_throughput(pool, redis, events, batch))
        for lag_rate in (rate / 4, rate):
            rows.append(await end_to_end_lag(pool, redis, lag_rate, seconds, batch=500))
        rows.extend(await write_cost(pool))
    median_relay = statistics.median(r["events_s"] for r in rows if r["scenario"] == "relay drain")
    return f"{render(rows)}\n\nrelay drain median: {median_relay:,.0f} events/s"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", help="PostgreSQL admin DSN (default: a throwaway cluster)")
    parser.add_argument("--redis-url", help="Redis URL (default: a throwaway server)")
    parser.add_argument("--events", type=int, default=20_000, help="events per relay-drain run")
    parser.add_argument("--rate", type=float, default=1000.0, help="highest write rate of the lag runs")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each lag run")
    args = parser.parse_args(argv)
    if args.database_url and args.redis_url:
        print(asyncio.run(run(args.database_url, args.redis_url, args.events, args.rate, args.seconds)))
        return
    if args.database_url or args.redis_url:
        parser.error("give both --database-url and --redis-url, or neither")
    with _throwaway_infra() as (database_url, redis_url):
        print(asyncio.run(run(database_url, redis_url, args.events, args.rate, args.seconds)))


if __name__ == "__main__":
    main()
