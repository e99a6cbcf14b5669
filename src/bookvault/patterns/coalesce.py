"""Request coalescing (single-flight): concurrent callers asking for the same key
share one in-flight computation instead of each hitting the backend.

    flights = SingleFlight[str, Book]()
    book = await flights.run(f"book:{id}", lambda: repo.load(id))

Only callers that arrive *while* a computation is running share it; the result
is not kept afterwards (that is a cache's job). If the leader fails, every
waiter gets the same exception. If the leader is cancelled, the computation
keeps running for the waiters that remain, so one impatient caller cannot fail
the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    __slots__ = ("_flights", "_tasks", "calls", "shared")

    def __init__(self) -> None:
        self._flights: dict[K, asyncio.Future[V]] = {}
        # The event loop holds tasks only weakly; keep computations alive until done.
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0  # computations actually started
        self.shared = 0  # callers served by someone else's computation

    def in_flight(self, key: K) -> bool:
        return key in self._flights

    async def run(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        existing = self._flights.get(key)
        if existing is not None:
            self.shared += 1
            # shield: a waiter being cancelled must not cancel the shared future.
            return await asyncio.shield(existing)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V] = loop.create_future()
        self._flights[key] = future
        self.calls += 1
        task = loop.create_task(self._compute(key, compute, future))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # The task settles `future`; awaiting the future (shielded) rather than
        # the task means cancelling this caller leaves the computation running.
        return await asyncio.shield(future)

    async def _compute(self, key: K, compute: Callable[[], Awaitable[V]], future: asyncio.Future[V]) -> None:
        try:
            result = await compute()
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
            # Nobody may be waiting any more; mark it retrieved so asyncio does not
            # log "exception was never retrieved" for a failure every caller saw.
            future.exception()
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        else:
            if not future.done():
                future.set_result(result)
        finally:
            if self._flights.get(key) is future:
                del self._flights[key]
