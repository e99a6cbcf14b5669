"""A service's read router (switch `replicas`): its primary pool for writes, one
pool per streaming replica for reads, write positions in Redis (or in this
process when there is no Redis), and the router's state on `/metrics`.

    async with open_router(settings, "catalog", primary_pool) as router: ...

Metrics (scraped from the router's snapshot, so reads pay nothing for them):
`bookvault_db_reads_total{server}` (primary | replica), `bookvault_db_read_fallbacks_total`,
`bookvault_db_writes_total`, and per replica `bookvault_db_replica_lag_bytes`,
`bookvault_db_replica_lag_seconds` (both -1 while unknown), `bookvault_db_replica_in_rotation`
and `bookvault_db_replica_replayed_lsn`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import asyncpg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from bookvault.config import Settings
from bookvault.db.pool import open_pool
from bookvault.patterns.db import (
    MemoryWritePositions,
    ReadRouter,
    RedisWritePositions,
    ReplicaPolicy,
    WritePositions,
)
from bookvault.redis_clients import fail_fast

__all__ = ["RouterCollector", "open_router", "policy_from"]

# Positions are looked up on the read path: past this, Redis counts as down and the
# read goes to the primary (always safe).
POSITION_TIMEOUT_S = 0.1


def policy_from(settings: Settings) -> ReplicaPolicy:
    return ReplicaPolicy(
        max_lag_bytes=settings.replica_max_lag_bytes,
        max_lag_seconds=settings.replica_max_lag_seconds,
        poll_interval_s=settings.replica_poll_interval_s,
    )


@contextlib.asynccontextmanager
async def open_router(settings: Settings, service: str, primary: asyncpg.Pool) -> AsyncIterator[ReadRouter]:
    """The router for `service`, probing its replicas until the block ends. With no
    replica configured it still works: every read goes to the primary."""
    replica_pools: dict[str, asyncpg.Pool] = {}
    redis: Redis | None = None
    router: ReadRouter | None = None
    try:
        for index, url in enumerate(settings.service_replica_urls(service), start=1):
            name = f"replica-{index}"
            replica_pools[name] = await open_pool(
                url,
                min_size=settings.pool_min_size,
                max_size=settings.pool_max_size,
                name=f"{service}-{name}",
                tuned=settings.pattern_on("tuned_pools"),
            )
        positions: WritePositions
        if settings.redis_url is not None:
            redis = fail_fast(settings.redis_url, POSITION_TIMEOUT_S)
            positions = RedisWritePositions(
                redis,
                prefix=f"bookvault:{service}:rw",
                ttl_s=settings.write_position_ttl_s,
                timeout_s=POSITION_TIMEOUT_S,
            )
        else:
            # One process per service then, so its own memory is the whole truth.
            positions = MemoryWritePositions(ttl_s=settings.write_position_ttl_s)
        router = ReadRouter(primary, replica_pools, positions=positions, policy=policy_from(settings))
        await router.start()
        yield router
    finally:
        if router is not None:
            await router.close()
        for pool in replica_pools.values():
            await pool.close()
        if redis is not None:
            await redis.aclose()


class RouterCollector(Collector):
    """The router's counters and each replica's lag, read at scrape time."""

    def __init__(self, router: ReadRouter) -> None:
        self._router = router

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        snapshot = self._router.snapshot()
        reads = CounterMetricFamily(
            "bookvault_db_reads", "Routed reads by the server that answered", labels=["server"]
        )
        reads.add_metric(["primary"], snapshot.reads_primary)
        reads.add_metric(["replica"], snapshot.reads_replica)
        fallbacks = CounterMetricFamily(
            "bookvault_db_read_fallbacks", "Reads sent to the primary because a replica failed"
        )
        fallbacks.add_metric([], snapshot.fallbacks)
        writes = CounterMetricFamily("bookvault_db_writes", "Writes whose position was noted")
        writes.add_metric([], snapshot.writes)
        lag_bytes = GaugeMetricFamily(
            "bookvault_db_replica_lag_bytes", "WAL bytes the replica has not replayed", labels=["replica"]
        )
        lag_seconds = GaugeMetricFamily(
            "bookvault_db_replica_lag_seconds",
            "Seconds since the replica last replayed, while behind (0 when caught up, -1 unknown)",
            labels=["replica"],
        )
        in_rotation = GaugeMetricFamily(
            "bookvault_db_replica_in_rotation", "1 when the replica serves reads", labels=["replica"]
        )
        replayed = GaugeMetricFamily(
            "bookvault_db_replica_replayed_lsn",
            "The WAL position the replica had replayed when last probed (pg_lsn as a number)",
            labels=["replica"],
        )
        for replica in snapshot.replicas:
            name = [str(replica["name"])]
            lag_bytes.add_metric(name, -1 if replica["lag_bytes"] is None else replica["lag_bytes"])
            lag_seconds.add_metric(name, -1 if replica["lag_seconds"] is None else replica["lag_seconds"])
            in_rotation.add_metric(name, 1 if replica["in_rotation"] else 0)
            replayed.add_metric(name, replica["replay_lsn"])
        yield from (reads, fallbacks, writes, lag_bytes, lag_seconds, in_rotation, replayed)
