"""asyncpg pools, opened inside an app's lifespan (never at import time), with
their usage exported to Prometheus.

`tuned_pools` (a pattern switch) changes two things:

* **No reset round trip.** asyncpg's default pool reset runs
  `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every
  release: one extra round trip per request. Tuned pools skip it. asyncpg still
  rolls back an open transaction and drops listener callbacks before calling our
  reset, so what is skipped is only session state our services never create. That
  was checked by searching every service's code and SQL: no LISTEN, no advisory lock
  (the only one, in `db.migrations`, is taken on a connection of its own, not a
  pool's), no DECLARE CURSOR or `Connection.cursor`, no SET / `set_config` of session
  settings. Code that starts doing any of those on a pooled connection must undo it
  itself or open its pool untuned.
* **A fixed-size pool** (HikariCP's advice: `minimumIdle` equal to
  `maximumPoolSize`), so a burst never waits for connections to be opened and an
  idle period never closes them. The size stays the service's `pool_max_size`
  (default 10, HikariCP's default too; its rule of thumb for a dedicated database
  is cores * 2 + effective spindles, summed over every process using it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import asyncpg
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bookvault.config import load_settings

__all__ = [
    "IDLE_LIFETIME_S",
    "TUNED_IDLE_LIFETIME_S",
    "PoolCollector",
    "open_pool",
    "register_pools",
    "skip_reset",
]

# Connections are recycled so a server restart or failover is healed over time.
IDLE_LIFETIME_S = 300.0
# A fixed pool keeps its connections; they are still replaced after half an hour
# idle (HikariCP's `maxLifetime` default), which heals a failover as slowly as needed.
TUNED_IDLE_LIFETIME_S = 1800.0


class ConnectionInit(Protocol):
    """Runs once on every new connection of a pool."""

    async def __call__(self, conn: asyncpg.Connection[asyncpg.Record], /) -> None: ...


async def skip_reset(_conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """The tuned pool's reset: nothing beyond asyncpg's own rollback (see the module doc)."""


def _tuned_from_settings() -> bool:
    # Services that do not say otherwise follow their process's settings.
    return load_settings().pattern_on("tuned_pools")


async def open_pool(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    name: str,
    tuned: bool | None = None,
    init: ConnectionInit | None = None,
) -> asyncpg.Pool:
    """A pool for service `name`; `tuned` None means as the `tuned_pools` switch says.
    `init` runs on every new connection."""
    if tuned is None:
        tuned = _tuned_from_settings()
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=max_size if tuned else min_size,
        max_size=max_size,
        max_inactive_connection_lifetime=TUNED_IDLE_LIFETIME_S if tuned else IDLE_LIFETIME_S,
        server_settings={"application_name": f"bookvault-{name}"},
        reset=skip_reset if tuned else None,
        init=init,
    )
    return pool


class PoolCollector(Collector):
    """Reads pool size and idle count at scrape time, so the hot path pays nothing."""

    def __init__(self, pools: dict[str, asyncpg.Pool]) -> None:
        self._pools = pools

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_use = GaugeMetricFamily("bookvault_db_pool_in_use", "Connections checked out", labels=["pool"])
        idle = GaugeMetricFamily("bookvault_db_pool_idle", "Idle connections", labels=["pool"])
        size = GaugeMetricFamily("bookvault_db_pool_size", "Open connections", labels=["pool"])
        for name, pool in self._pools.items():
            total = pool.get_size()
            idle_count = pool.get_idle_size()
            size.add_metric([name], total)
            idle.add_metric([name], idle_count)
            in_use.add_metric([name], total - idle_count)
        yield from (in_use, idle, size)


def register_pools(registry: CollectorRegistry, pools: dict[str, asyncpg.Pool]) -> None:
    registry.register(PoolCollector(pools))
