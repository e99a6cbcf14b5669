"""Connection-leak detection: a connection held longer than a threshold is
reported with where it was taken (HikariCP's leakDetectionThreshold).

    guard = LeakGuard(pool, threshold_s=60)
    async with guard.acquire() as conn: ...
    guard.check()   # or run guard.watch() as a background task

Recording the acquiring stack costs a few microseconds per acquire, so the
guard is meant for pools whose callers hold connections for whole requests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import traceback
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import asyncpg

from bookvault.patterns.clock import Clock, SystemClock

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # What a pool hands out: a proxy that behaves as a connection.
    PooledConnection = PoolConnectionProxy[asyncpg.Record]

__all__ = ["LeakGuard", "LeakReport"]

log = logging.getLogger(__name__)
_STACK_DEPTH = 12


@dataclasses.dataclass(frozen=True, slots=True)
class LeakReport:
    held_for_s: float
    taken_at: str  # the acquiring stack, innermost last

    def __str__(self) -> str:
        return f"connection held for {self.held_for_s:.1f} s, taken at:\n{self.taken_at}"


class LeakGuard:
    def __init__(self, pool: asyncpg.Pool, threshold_s: float = 60.0, clock: Clock | None = None) -> None:
        if threshold_s <= 0:
            raise ValueError("the leak detection threshold must be positive")
        self._pool = pool
        self._threshold_s = threshold_s
        self._clock = clock or SystemClock()
        self._held: dict[int, tuple[float, str]] = {}
        self._ids = itertools.count()
        self._reported: set[int] = set()
        self.leaks_reported = 0

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[PooledConnection]:
        token = next(self._ids)
        stack = "".join(traceback.format_stack(limit=_STACK_DEPTH)[:-2])
        async with self._pool.acquire() as conn:
            self._held[token] = (self._clock.monotonic(), stack)
            try:
                yield conn
            finally:
                self._held.pop(token, None)
                self._reported.discard(token)

    @property
    def held(self) -> int:
        return len(self._held)

    def check(self) -> list[LeakReport]:
        """Report (once each) connections held past the threshold."""
        now = self._clock.monotonic()
        reports: list[LeakReport] = []
        for token, (taken, stack) in list(self._held.items()):
            if now - taken >= self._threshold_s and token not in self._reported:
                self._reported.add(token)
                report = LeakReport(now - taken, stack)
                reports.append(report)
                self.leaks_reported += 1
                log.warning("possible connection leak: %s", report)
        return reports

    async def watch(self, interval_s: float = 1.0) -> None:
        """Check forever; run as a background task and cancel it on shutdown."""
        while True:
            await self._clock.sleep(interval_s)
            self.check()
