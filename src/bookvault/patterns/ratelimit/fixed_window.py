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

from bookvault.patterns.ratelimit._validate import check_count, check_seconds
from bookvault.patterns.ratelimit.algorithm import Outcome

__all__ = ["FixedWindow"]


@dataclass(frozen=True, slots=True)
class FixedWindow:
    limit: int
    window: float

    script: ClassVar[str] = "fixed_window"
    tag: ClassVar[str] = "fw"

    def __post_init__(self) -> None:
        check_count("FixedWindow", "limit", self.limit)
        check_seconds("FixedWindow", "window", self.window)

    @property
    def quota(self) -> int:
        return self.limit

    @property
    def capacity(self) -> int:
        return self.limit

    @property
    def default_cost(self) -> int:
        return 1

    def new_state(self) -> _Counter:
        return _Counter(self.limit, float(self.window))

    def redis_args(self) -> tuple[int, int]:
        return self.limit, round(self.window * 1_000_000)


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
