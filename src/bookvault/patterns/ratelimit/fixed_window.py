"""Fixed window: at most `limit` units per aligned window of `window` seconds.

The counter of the current window resets at each boundary (Redis: a hash
incremented with HINCRBY that expires at the window's end). The cheapest
algorithm, and the least smooth: a client can spend `limit` at the end of one
window and `limit` again at the start of the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from bookvault.patterns.ratelimit._windowed import WindowedAlgorithm
from bookvault.patterns.ratelimit.algorithm import Outcome

__all__ = ["FixedWindow"]


@dataclass(frozen=True, slots=True)
class FixedWindow(WindowedAlgorithm):
    script: ClassVar[str] = "fixed_window"
    tag: ClassVar[str] = "fw"

    def new_state(self) -> _Counter:
        return _Counter(self.limit, float(self.window))


class _Counter:
    __slots__ = ("index", "limit", "size", "used")

    def __init__(self, limit: int, size: float) -> None:
        self.limit = limit
        self.size = size
        self.index = -1
        self.used = 0

    def take(self, now: float, cost: int) -> Outcome:
        size = self.size
        index = math.floor(now / size)
        if index != self.index:
            self.index = index
            self.used = 0
        reset_after = (index + 1) * size - now
        used = self.used + cost
        if used > self.limit:
            return False, self.limit - self.used, reset_after, reset_after
        self.used = used
        return True, self.limit - used, reset_after, 0.0
