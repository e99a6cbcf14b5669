"""A bounded map with least-recently-used eviction and a TTL per item.

Time comes from an injected `Clock` (monotonic seconds), so expiry is tested with a
`FakeClock`. Expired items are dropped when they are read or pushed out by the size
bound; there is no sweeper task.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from bookvault.patterns.clock import Clock

from .errors import CacheConfigError

__all__ = ["LruTtlMap"]

T = TypeVar("T")


class LruTtlMap(Generic[T]):
    __slots__ = ("_clock", "_items", "evictions", "maxsize")

    def __init__(self, maxsize: int, clock: Clock) -> None:
        if maxsize < 1:
            raise CacheConfigError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self._clock = clock
        self._items: OrderedDict[str, tuple[T, float]] = OrderedDict()
        self.evictions = 0  # items pushed out by the size bound (not expiries)

    def get(self, key: str) -> T | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[1] <= self._clock.monotonic():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return item[0]

    def expires_in(self, key: str) -> float | None:
        """Seconds the item has left, or None if absent or expired."""
        item = self._items.get(key)
        if item is None:
            return None
        left = item[1] - self._clock.monotonic()
        return left if left > 0 else None

    def set(self, key: str, value: T, ttl: float) -> None:
        items = self._items
        items[key] = (value, self._clock.monotonic() + ttl)
        items.move_to_end(key)
        if len(items) > self.maxsize:
            items.popitem(last=False)
            self.evictions += 1

    def pop(self, key: str) -> T | None:
        item = self._items.pop(key, None)
        return None if item is None else item[0]

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
