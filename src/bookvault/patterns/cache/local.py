"""The in-process tier: decoded values in a bounded LRU, evicted by invalidations.

A hit costs a dict lookup and a TTL check. The tier serves only while it is `live`,
that is while invalidation messages flow; when they may have been missed it is
cleared, and while they do not flow it is bypassed.

The race it must not lose: a read fetches a value from the shared tier, an
invalidation for that key arrives while the reply is in flight, then the read stores
the old value here. So every change bumps a sequence number; a read takes the
number before fetching (`begin`) and stores only if the key has not been invalidated
since (`put`). Invalidated keys remember their number in a bounded map; when one is
forgotten, `_floor` keeps its number, so the check errs towards not storing.
"""

from __future__ import annotations

import asyncio
import enum
from collections import OrderedDict
from typing import Final, Generic, Literal, TypeVar

from bookvault.patterns.clock import Clock

from .metrics import CacheMetrics

__all__ = ["MISS", "LocalTier", "Miss"]

V = TypeVar("V")


class Miss(enum.Enum):
    MISS = enum.auto()


MISS: Final = Miss.MISS


class LocalTier(Generic[V]):
    __slots__ = (
        "_clock",
        "_floor",
        "_invalidated",
        "_items",
        "_live_event",
        "_metrics",
        "_seq",
        "live",
        "maxsize",
        "ttl",
    )

    def __init__(self, maxsize: int, ttl: float, clock: Clock, metrics: CacheMetrics) -> None:
        self.maxsize = maxsize
        self.ttl = ttl
        self._clock = clock
        self._metrics = metrics
        self._items: OrderedDict[str, tuple[V | None, float]] = OrderedDict()
        self._invalidated: OrderedDict[str, int] = OrderedDict()
        self._seq = 0
        self._floor = 0
        self.live = False
        self._live_event = asyncio.Event()

    async def wait_live(self) -> None:
        await self._live_event.wait()

    def get(self, key: str) -> V | Literal[Miss.MISS] | None:
        item = self._items.get(key)
        if item is None:
            return MISS
        if item[1] <= self._clock.monotonic():
            del self._items[key]
            return MISS
        self._items.move_to_end(key)
        return item[0]

    def begin(self) -> int:
        return self._seq

    def put(self, key: str, value: V | None, ttl: float, since: int) -> None:
        if not self.live or ttl <= 0:
            return
        if self._invalidated.get(key, self._floor) > since:
            return  # invalidated while this value was being fetched
        items = self._items
        items[key] = (value, self._clock.monotonic() + min(ttl, self.ttl))
        items.move_to_end(key)
        if len(items) > self.maxsize:
            items.popitem(last=False)
            self._metrics.evictions += 1

    def evict(self, key: str) -> None:
        self._seq += 1
        self._items.pop(key, None)
        marks = self._invalidated
        marks[key] = self._seq
        marks.move_to_end(key)
        if len(marks) > self.maxsize:
            _, forgotten = marks.popitem(last=False)
            self._floor = max(self._floor, forgotten)

    def __len__(self) -> int:
        return len(self._items)

    # InvalidationListener

    def invalidated(self, key: str) -> None:
        self._metrics.invalidations_received += 1
        self.evict(key)

    def reset(self, *, live: bool) -> None:
        self._seq += 1
        self._floor = self._seq
        self._invalidated.clear()
        if self._items:
            self._items.clear()
        self._metrics.local_resets += 1
        self.live = live
        if live:
            self._live_event.set()
        else:
            self._live_event.clear()
