"""Sliding log: exact. Every admitted unit is remembered for `window` seconds.

A request passes when the units admitted in the last `window` seconds plus its
cost stay within `limit`. Memory grows with the limit (one entry per unit; in
Redis a sorted-set member), so keep it for small, strict limits such as
payments or logins, and prefer the sliding window counter for large ones.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import ClassVar

from bookvault.patterns.ratelimit._windowed import WindowedAlgorithm
from bookvault.patterns.ratelimit.algorithm import Outcome

__all__ = ["SlidingLog"]


@dataclass(frozen=True, slots=True)
class SlidingLog(WindowedAlgorithm):
    script: ClassVar[str] = "sliding_log"
    tag: ClassVar[str] = "sl"

    def new_state(self) -> _Log:
        return _Log(self.limit, float(self.window))


class _Log:
    __slots__ = ("entries", "limit", "size", "used")

    def __init__(self, limit: int, size: float) -> None:
        self.limit = limit
        self.size = size
        # (admitted at, units): one entry per request, not per unit, in memory.
        self.entries: deque[tuple[float, int]] = deque()
        self.used = 0

    def take(self, now: float, cost: int) -> Outcome:
        entries = self.entries
        size = self.size
        horizon = now - size
        # An entry stops counting exactly `size` seconds after it was admitted.
        while entries and entries[0][0] <= horizon:
            self.used -= entries.popleft()[1]
        used = self.used
        if used + cost <= self.limit:
            entries.append((now, cost))
            self.used = used + cost
            return True, self.limit - used - cost, size, 0.0
        excess = used + cost - self.limit
        retry_after = size
        for admitted_at, units in entries:
            excess -= units
            if excess <= 0:
                retry_after = admitted_at + size - now
                break
        return False, self.limit - used, entries[-1][0] + size - now, retry_after
