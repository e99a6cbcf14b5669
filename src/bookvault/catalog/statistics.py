"""Keeps the `book_statistics` materialized view fresh, without refreshing it on
every edit (switch `materialized_views`).

Every book edit calls `book_changed()`. The view is refreshed once edits have
been quiet for `quiet_s`, and at the latest `max_delay_s` after the first
unrefreshed edit, so a steady stream of edits cannot postpone it forever. Readers
see `as_of`, the time the refresh that built their figures started: statistics
are eventually consistent, at most about `max_delay_s` plus one refresh behind.

The refresh is `REFRESH MATERIALIZED VIEW CONCURRENTLY`: readers keep reading the
old figures while the new ones are built. A failed refresh is logged, counted and
retried after another quiet period. Run `run()` as a task in the app's lifespan;
tests drive `refresh_if_due()` with a fake clock instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import asyncpg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from bookvault.catalog import repo
from bookvault.patterns.clock import Clock, SystemClock

__all__ = ["StatisticsCollector", "StatisticsRefresher"]

log = logging.getLogger(__name__)


class StatisticsRefresher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        quiet_s: float = 1.0,
        max_delay_s: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        if not 0 <= quiet_s <= max_delay_s:
            raise ValueError("quiet_s must be between 0 and max_delay_s")
        self._pool = pool
        self._quiet_s = quiet_s
        self._max_delay_s = max_delay_s
        self._clock = clock or SystemClock()
        self._first_change: float | None = None  # the oldest edit not yet refreshed
        self._last_change = 0.0
        self._wake = asyncio.Event()
        self.refreshes = 0
        self.failures = 0

    def book_changed(self) -> None:
        """A book was created, edited or deleted (after its commit)."""
        now = self._clock.monotonic()
        if self._first_change is None:
            self._first_change = now
        self._last_change = now
        self._wake.set()

    @property
    def pending(self) -> bool:
        return self._first_change is not None

    def due_in(self) -> float | None:
        """Seconds until the next refresh is due; None when nothing changed."""
        if self._first_change is None:
            return None
        due = min(self._last_change + self._quiet_s, self._first_change + self._max_delay_s)
        return max(0.0, due - self._clock.monotonic())

    async def refresh_if_due(self) -> bool:
        """Refresh when due; True when a refresh ran and succeeded."""
        wait = self.due_in()
        if wait is None or wait > 0:
            return False
        # Edits committed from here on may miss this refresh: they ask for the next.
        self._first_change = None
        try:
            async with self._pool.acquire() as conn:
                await repo.refresh_genre_stats(conn)
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            self.failures += 1
            log.warning("genre statistics not refreshed, retrying after the next quiet period: %s", exc)
            self.book_changed()
            return False
        self.refreshes += 1
        return True

    async def run(self) -> None:
        """Refresh whenever due, forever; cancel it to stop."""
        while True:
            wait = self.due_in()
            if wait is None:
                await self._wake.wait()
                self._wake.clear()
            elif wait > 0:
                await self._clock.sleep(wait)
            else:
                await self.refresh_if_due()


class StatisticsCollector(Collector):
    def __init__(self, refresher: StatisticsRefresher) -> None:
        self._refresher = refresher

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        refreshes = CounterMetricFamily(
            "bookvault_catalog_stats_refreshes", "Refreshes of the book_statistics view"
        )
        refreshes.add_metric([], self._refresher.refreshes)
        failures = CounterMetricFamily(
            "bookvault_catalog_stats_refresh_failures", "Refreshes of book_statistics that failed"
        )
        failures.add_metric([], self._refresher.failures)
        pending = GaugeMetricFamily(
            "bookvault_catalog_stats_refresh_pending", "1 while book edits wait for a refresh"
        )
        pending.add_metric([], 1 if self._refresher.pending else 0)
        yield from (refreshes, failures, pending)
