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

Whatever the switch, every pool is a `ServicePool` with HikariCP's other settings,
as named defaults (`PoolOptions`, from the `pool_*` settings):

* **acquire timeout** (`connectionTimeout`): waiting longer for a connection raises
  `TimeoutError` instead of queueing forever behind a stuck pool;
* **idle timeout** (`idleTimeout`): idle connections above the minimum are closed
  (a fixed pool keeps them: HikariCP applies it only below `maximumPoolSize`);
* **max lifetime** (`maxLifetime`): every connection is replaced once this old, so
  a failover or a server-side setting change reaches every connection. asyncpg has
  no per-connection lifetime; the pool expires its connections each lifetime and
  each is reopened when next taken (`Pool.expire_connections`);
* **leak detection** (`leakDetectionThreshold`): a connection held longer is
  logged once with where it was taken (`patterns.db.LeakGuard`), and counted on
  `/metrics` (`bookvault_db_pool_leaks_total`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from bookvault.config import Settings, load_settings
from bookvault.patterns.clock import Clock, SystemClock
from bookvault.patterns.db import LeakGuard

if TYPE_CHECKING:
    from asyncpg.pool import PoolAcquireContext, PoolConnectionProxy

    _PoolBase = asyncpg.Pool[asyncpg.Record]
else:
    _PoolBase = asyncpg.Pool  # not subscriptable at run time

__all__ = [
    "IDLE_LIFETIME_S",
    "TUNED_IDLE_LIFETIME_S",
    "PoolCollector",
    "PoolOptions",
    "ServicePool",
    "open_pool",
    "register_pools",
    "skip_reset",
]

log = logging.getLogger(__name__)

# Kept for callers that name them; the values now come from `PoolOptions`.
IDLE_LIFETIME_S = 600.0
TUNED_IDLE_LIFETIME_S = 1800.0
# How often a pool looks for leaks and for connections past their lifetime.
MAINTENANCE_INTERVAL_S = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class PoolOptions:
    """HikariCP's pool settings under their Python names (see the module doc)."""

    acquire_timeout_s: float = 20.0
    idle_timeout_s: float = IDLE_LIFETIME_S
    max_lifetime_s: float = TUNED_IDLE_LIFETIME_S
    leak_detection_s: float = 60.0  # 0: off

    @classmethod
    def from_settings(cls, settings: Settings) -> PoolOptions:
        return cls(
            acquire_timeout_s=settings.pool_acquire_timeout_s,
            idle_timeout_s=settings.pool_idle_timeout_s,
            max_lifetime_s=settings.pool_max_lifetime_s,
            leak_detection_s=settings.pool_leak_detection_s,
        )


class ConnectionInit(Protocol):
    """Runs once on every new connection of a pool."""

    async def __call__(self, conn: asyncpg.Connection[asyncpg.Record], /) -> None: ...


async def skip_reset(_conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """The tuned pool's reset: nothing beyond asyncpg's own rollback (see the module doc)."""


class ServicePool(_PoolBase):
    """An asyncpg pool with a default acquire timeout, leak detection and a
    maximum connection lifetime. Everything that takes a connection (`acquire`,
    and `fetch*`/`execute`, which acquire) goes through `acquire`."""

    __slots__ = ("_clock", "_last_expiry", "_maintenance", "leaks", "options")

    def __init__(self, *args: Any, options: PoolOptions, clock: Clock | None = None, **kwargs: Any) -> None:
        self.options = options
        self._clock = clock or SystemClock()
        self.leaks: LeakGuard | None = (
            LeakGuard(threshold_s=options.leak_detection_s, clock=self._clock, skip_files=(__file__,))
            if options.leak_detection_s > 0
            else None
        )
        self._last_expiry = self._clock.monotonic()
        self._maintenance: asyncio.Task[None] | None = None
        if self.leaks is not None:
            kwargs["setup"] = self._taken
        super().__init__(*args, **kwargs)

    async def _taken(self, proxy: PoolConnectionProxy[asyncpg.Record]) -> None:
        if self.leaks is not None:
            self.leaks.taken(id(proxy))

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext[asyncpg.Record]:
        return super().acquire(timeout=self.options.acquire_timeout_s if timeout is None else timeout)

    async def release(
        self,
        connection: PoolConnectionProxy[asyncpg.Record],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - overrides asyncpg's signature
    ) -> None:
        if self.leaks is not None:
            self.leaks.returned(id(connection))
        await super().release(connection, timeout=timeout)

    def start_maintenance(self) -> None:
        """Check for leaks and expire old connections in the background until closed."""
        if self._maintenance is None:
            self._maintenance = asyncio.get_running_loop().create_task(self._maintain_forever())

    async def _maintain_forever(self) -> None:
        while True:
            # Real time between checks; the injected clock only measures ages, so a
            # test drives `maintain()` itself instead of waiting.
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)
            try:
                await self.maintain()
            except Exception:  # one failed round must not end maintenance
                log.exception("pool maintenance failed")

    async def maintain(self) -> None:
        """One round: report leaks, and expire connections past their lifetime."""
        if self.leaks is not None:
            self.leaks.check()
        now = self._clock.monotonic()
        if now - self._last_expiry >= self.options.max_lifetime_s:
            self._last_expiry = now
            await self.expire_connections()

    async def _stop_maintenance(self) -> None:
        task, self._maintenance = self._maintenance, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        await self._stop_maintenance()
        await super().close()

    def terminate(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            self._maintenance = None
        super().terminate()


def _settings_for_pools() -> Settings:
    # Services that do not say otherwise follow their process's settings.
    return load_settings()


async def open_pool(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    name: str,
    tuned: bool | None = None,
    init: ConnectionInit | None = None,
    options: PoolOptions | None = None,
    clock: Clock | None = None,
) -> ServicePool:
    """A pool for service `name`; `tuned` None means as the `tuned_pools` switch
    says, `options` None means the `pool_*` settings. `init` runs on every new
    connection. Close it with `await pool.close()`."""
    if tuned is None or options is None:
        settings = _settings_for_pools()
        tuned = settings.pattern_on("tuned_pools") if tuned is None else tuned
        options = options or PoolOptions.from_settings(settings)
    # A fixed pool keeps its connections until their lifetime ends (see the module doc).
    idle_timeout = options.max_lifetime_s if tuned else options.idle_timeout_s
    pool = ServicePool(
        dsn,
        options=options,
        clock=clock,
        min_size=max_size if tuned else min_size,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=idle_timeout,
        server_settings={"application_name": f"bookvault-{name}"},
        reset=skip_reset if tuned else None,
        init=init,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
    )
    await pool
    pool.start_maintenance()
    return pool


class PoolCollector(Collector):
    """Reads pool size and idle count at scrape time, so the hot path pays nothing."""

    def __init__(self, pools: dict[str, asyncpg.Pool]) -> None:
        self._pools = pools

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        in_use = GaugeMetricFamily("bookvault_db_pool_in_use", "Connections checked out", labels=["pool"])
        idle = GaugeMetricFamily("bookvault_db_pool_idle", "Idle connections", labels=["pool"])
        size = GaugeMetricFamily("bookvault_db_pool_size", "Open connections", labels=["pool"])
        max_size = GaugeMetricFamily("bookvault_db_pool_max_size", "Connections allowed", labels=["pool"])
        overdue = GaugeMetricFamily(
            "bookvault_db_pool_held_too_long",
            "Connections held past the leak detection threshold",
            labels=["pool"],
        )
        leaks = CounterMetricFamily(
            "bookvault_db_pool_leaks", "Connections reported as possibly leaked", labels=["pool"]
        )
        for name, pool in self._pools.items():
            total = pool.get_size()
            idle_count = pool.get_idle_size()
            size.add_metric([name], total)
            idle.add_metric([name], idle_count)
            in_use.add_metric([name], total - idle_count)
            max_size.add_metric([name], pool.get_max_size())
            guard = pool.leaks if isinstance(pool, ServicePool) else None
            if guard is not None:
                overdue.add_metric([name], guard.overdue())
                leaks.add_metric([name], guard.leaks_reported)
        yield from (in_use, idle, size, max_size, overdue, leaks)


def register_pools(registry: CollectorRegistry, pools: dict[str, asyncpg.Pool]) -> None:
    registry.register(PoolCollector(pools))
