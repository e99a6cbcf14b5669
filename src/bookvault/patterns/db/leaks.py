"""Connection-leak detection: a connection held longer than a threshold is
reported with where it was taken (HikariCP's leakDetectionThreshold).

    guard = LeakGuard(pool, threshold_s=60)
    async with guard.acquire() as conn: ...
    guard.check()   # or run guard.watch() as a background task

A pool that hands out connections itself (a subclass, or asyncpg's `setup`
hook) calls `guard.taken(key)` when it gives one out and `guard.returned(key)`
when it comes back, with any key unique while the connection is held.

Only the acquiring frames' file, line and function are recorded (about 10 µs
per acquire here, against ~200 µs for the query it serves); source lines are
looked up only when a leak is reported. Turn the guard off (threshold 0 in the
services' settings) where even that matters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import linecache
import logging
import os
import sys
from collections.abc import AsyncIterator, Hashable
from types import FrameType
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
# Frames of the pool machinery say nothing about who took the connection.
_SKIPPED = (__file__, f"{os.sep}contextlib.py", f"{os.sep}asyncpg{os.sep}")

Frames = tuple[tuple[str, int, str], ...]


def _caller_frames(skipped: tuple[str, ...] = _SKIPPED) -> Frames:
    """The acquiring stack, outermost first, without the pool's own frames."""
    frames: list[tuple[str, int, str]] = []
    frame: FrameType | None = sys._getframe(1)  # the cheap way to walk the stack
    while frame is not None and len(frames) < _STACK_DEPTH:
        code = frame.f_code
        if not any(part in code.co_filename for part in skipped):
            frames.append((code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    frames.reverse()
    return tuple(frames)


def _format(frames: Frames) -> str:
    lines = []
    for filename, lineno, name in frames:
        lines.append(f'  File "{filename}", line {lineno}, in {name}\n')
        source = linecache.getline(filename, lineno).strip()
        if source:
            lines.append(f"    {source}\n")
    return "".join(lines)


@dataclasses.dataclass(frozen=True, slots=True)
class LeakReport:
    held_for_s: float
    taken_at: str  # the acquiring stack, innermost last

    def __str__(self) -> str:
        return f"connection held for {self.held_for_s:.1f} s, taken at:\n{self.taken_at}"


class LeakGuard:
    def __init__(
        self,
        pool: asyncpg.Pool | None = None,
        threshold_s: float = 60.0,
        clock: Clock | None = None,
        *,
        skip_files: tuple[str, ...] = (),
    ) -> None:
        """`skip_files`: path fragments of the caller's own pool code, left out of reports."""
        if threshold_s <= 0:
            raise ValueError("the leak detection threshold must be positive")
        self._pool = pool
        self._threshold_s = threshold_s
        self._clock = clock or SystemClock()
        self._skipped = _SKIPPED + skip_files
        self._held: dict[Hashable, tuple[float, Frames]] = {}
        self._ids = itertools.count()
        self._reported: set[Hashable] = set()
        self.leaks_reported = 0

    @property
    def threshold_s(self) -> float:
        return self._threshold_s

    def taken(self, key: Hashable) -> None:
        """A connection was handed out (call from the code that acquires it)."""
        self._held[key] = (self._clock.monotonic(), _caller_frames(self._skipped))

    def returned(self, key: Hashable) -> None:
        """The connection taken under `key` is back (unknown keys are ignored)."""
        self._held.pop(key, None)
        self._reported.discard(key)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[PooledConnection]:
        if self._pool is None:
            raise RuntimeError("this guard watches a pool that reports to it; acquire from that pool")
        token = ("guard", next(self._ids))
        frames = _caller_frames(self._skipped)
        async with self._pool.acquire() as conn:
            self._held[token] = (self._clock.monotonic(), frames)
            try:
                yield conn
            finally:
                self.returned(token)

    @property
    def held(self) -> int:
        return len(self._held)

    def overdue(self) -> int:
        """Connections held past the threshold right now."""
        limit = self._clock.monotonic() - self._threshold_s
        return sum(1 for taken, _ in self._held.values() if taken <= limit)

    def check(self) -> list[LeakReport]:
        """Report (once each) connections held past the threshold."""
        now = self._clock.monotonic()
        reports: list[LeakReport] = []
        for token, (taken, frames) in list(self._held.items()):
            if now - taken >= self._threshold_s and token not in self._reported:
                self._reported.add(token)
                report = LeakReport(now - taken, _format(frames))
                reports.append(report)
                self.leaks_reported += 1
                log.warning("possible connection leak: %s", report)
        return reports

    async def watch(self, interval_s: float = 1.0) -> None:
        """Check forever; run as a background task and cancel it on shutdown."""
        while True:
            await self._clock.sleep(interval_s)
            self.check()
