"""Time as a dependency.

Every time-dependent pattern (windows, TTLs, breakers, backoff) takes a `Clock`,
so tests drive time with `FakeClock` instead of sleeping on the wall clock.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""


class SystemClock:
    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to. `sleep` advances it at once, so
    code under test that waits sees time pass without the test waiting."""

    __slots__ = ("_monotonic", "_wall", "sleeps")

    def __init__(self, start: float = 1_000.0, wall_start: float = 1_800_000_000.0) -> None:
        self._monotonic = start
        self._wall = wall_start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._monotonic

    def time(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._monotonic += seconds
        self._wall += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(seconds, 0.0))
        # Yield so other tasks run, as a real sleep would let them.
        await asyncio.sleep(0)
