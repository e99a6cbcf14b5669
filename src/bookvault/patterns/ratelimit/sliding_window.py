"""Sliding window counter: a fixed window's cost with most of a log's smoothness.

Two counters per key, the current aligned window and the previous one. A
request at fraction `f` into the current window sees

    estimate = previous * (1 - f) + current

and passes when `estimate + cost <= limit`, so the boundary burst a fixed
window allows is smoothed away. The estimate assumes the previous window's
requests were spread evenly; that is the whole approximation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from bookvault.patterns.ratelimit._windowed import WindowedAlgorithm
from bookvault.patterns.ratelimit.algorithm import EPSILON, Outcome

__all__ = ["SlidingWindow"]


@dataclass(frozen=True, slots=True)
class SlidingWindow(WindowedAlgorithm):
    script: ClassVar[str] = "sliding_window"
    tag: ClassVar[str] = "sw"

    def new_state(self) -> _TwoWindows:
        return _TwoWindows(self.limit, float(self.window))


class _TwoWindows:
    __slots__ = ("current", "index", "limit", "previous", "size")

    def __init__(self, limit: int, size: float) -> None:
        self.limit = limit
        self.size = size
        self.index = -2
        self.current = 0
        self.previous = 0

    def take(self, now: float, cost: int) -> Outcome:
        size = self.size
        limit = self.limit
        index = math.floor(now / size)
        if index != self.index:
            self.previous = self.current if index == self.index + 1 else 0
            self.current = 0
            self.index = index
        start = index * size
        current = self.current
        previous = self.previous
        estimate = previous * (1.0 - (now - start) / size) + current
        if estimate + cost <= limit + EPSILON:
            self.current = current + cost
            # Units taken now still weigh until the end of the next window.
            return True, max(0, int(limit - estimate - cost + EPSILON)), start + 2 * size - now, 0.0
        if current + cost > limit:
            # This window alone is full: wait for the next one, until this
            # window's count, then weighing as "previous", has faded enough.
            retry_after = start + size - now + size * max(0.0, 1.0 - (limit - cost) / current)
        else:
            retry_after = start + size * (1.0 - (limit - current - cost) / previous) - now
        reset_after = start + 2 * size - now if current else start + size - now
        return False, max(0, int(limit - estimate + EPSILON)), reset_after, retry_after
