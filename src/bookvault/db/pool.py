"""asyncpg pools, opened inside an app's lifespan (never at import time), with
their usage exported to Prometheus."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


async def open_pool(dsn: str, *, min_size: int, max_size: int, name: str) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        # Connections are recycled so a server restart or failover is healed over time.
        max_inactive_connection_lifetime=300.0,
        server_settings={"application_name": f"bookvault-{name}"},
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
