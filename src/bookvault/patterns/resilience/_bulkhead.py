"""A bulkhead: a cap on concurrent calls to one dependency, with a bounded wait queue.

    catalog = Bulkhead("catalog", BulkheadConfig(max_concurrent_calls=20, max_wait_duration=0.05))
    async with catalog:
        await client.get_book(book_id)

One bulkhead per dependency means a dependency that stalls can hold at most its
own slots; calls to every other dependency keep their capacity.

When every slot is taken, a caller waits in FIFO order for at most
`max_wait_duration` seconds, and only while fewer than `max_queued_calls` already
wait; otherwise it gets `BulkheadFull` at once, without awaiting. With
`max_wait_duration=0` (the default, as in Resilience4j) a full bulkhead rejects
immediately. A wait never outlasts the current deadline (`use_deadline`).
Waits are timed with the injected clock, so a `FakeClock` test sees them expire
without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from ..clock import Clock, SystemClock
from ._deadline import current_deadline
from ._errors import BulkheadFull

__all__ = ["Bulkhead", "BulkheadConfig", "BulkheadMetrics"]

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BulkheadConfig:
    # Seed 002 sizes the catalog pool at 20 threads with a queue of 100.
    max_concurrent_calls: int = 20
    max_wait_duration: float = 0.0
    """Seconds a caller may wait for a slot; 0 rejects at once when every slot is taken."""
    max_queued_calls: int = 100
    """Callers allowed to wait at the same time (used only when max_wait_duration > 0)."""

    def __post_init__(self) -> None:
        if isinstance(self.max_concurrent_calls, bool) or self.max_concurrent_calls < 1:
            raise ValueError(
                f"max_concurrent_calls must be an integer >= 1, got {self.max_concurrent_calls!r}"
            )
        if not self.max_wait_duration >= 0:
            raise ValueError(f"max_wait_duration must be >= 0 seconds, got {self.max_wait_duration!r}")
        if isinstance(self.max_queued_calls, bool) or self.max_queued_calls < 0:
            raise ValueError(f"max_queued_calls must be an integer >= 0, got {self.max_queued_calls!r}")


@dataclass(frozen=True, slots=True)
class BulkheadMetrics:
    name: str
    max_concurrent_calls: int
    in_flight: int
    queued: int
    rejected: int
    """Calls refused since the bulkhead was made (a counter)."""


class Bulkhead:
    __slots__ = ("_clock", "_in_flight", "_max", "_waiters", "config", "name", "rejected")

    def __init__(
        self, name: str = "default", config: BulkheadConfig | None = None, *, clock: Clock | None = None
    ) -> None:
        self.name = name
        self.config = config if config is not None else BulkheadConfig()
        self._clock = clock if clock is not None else SystemClock()
        self._max = self.config.max_concurrent_calls
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.rejected = 0

    def __repr__(self) -> str:
        return (
            f"<Bulkhead {self.name!r} {self._in_flight}/{self._max} in flight, {len(self._waiters)} queued>"
        )

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def metrics(self) -> BulkheadMetrics:
        return BulkheadMetrics(self.name, self._max, self._in_flight, len(self._waiters), self.rejected)

    async def acquire(self) -> None:
        """Take a slot, waiting as configured; raise `BulkheadFull` if none comes.

        Pair every successful `acquire()` with one `release()`; `async with` does.
        """
        # Queued callers go first, so a newcomer may not jump the queue.
        if self._in_flight < self._max and not self._waiters:
            self._in_flight += 1
            return
        max_wait = self.config.max_wait_duration
        deadline = current_deadline()
        if deadline is not None:
            max_wait = min(max_wait, deadline.remaining())
        if max_wait <= 0 or len(self._waiters) >= self.config.max_queued_calls:
            self.rejected += 1
            raise BulkheadFull(self.name, max_concurrent_calls=self._max, waited=0.0)
        await self._wait(max_wait)

    def release(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                # Hand the slot straight to the next caller: `_in_flight` stays as it is,
                # so nobody arriving meanwhile can take it first.
                waiter.set_result(None)
                return
        if self._in_flight == 0:
            raise RuntimeError(f"bulkhead {self.name!r}: release() without a matching acquire()")
        self._in_flight -= 1

    async def _wait(self, max_wait: float) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.create_task(self._expire(waiter, max_wait))
        try:
            await waiter
        except BaseException:
            if _granted(waiter):
                # The slot was handed over just as this caller was cancelled: pass it on.
                self.release()
            else:
                # Timed out or cancelled while queued: leave the queue (O(n), off the hot path),
                # unless a release() already dropped this finished waiter from it.
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        finally:
            timer.cancel()

    async def _expire(self, waiter: asyncio.Future[None], max_wait: float) -> None:
        await self._clock.sleep(max_wait)
        if not waiter.done():
            self.rejected += 1
            waiter.set_exception(BulkheadFull(self.name, max_concurrent_calls=self._max, waited=max_wait))

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        await self.acquire()
        try:
            return await fn(*args, **kwargs)
        finally:
            self.release()

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """Use the bulkhead as a decorator of an async function."""

        @functools.wraps(fn)
        async def isolated(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(fn, *args, **kwargs)

        return isolated


def _granted(waiter: asyncio.Future[None]) -> bool:
    # `exception()` raises on a cancelled future, hence the order of the checks.
    return waiter.done() and not waiter.cancelled() and waiter.exception() is None
