"""GCRA (generic cell rate algorithm): a token bucket stored as one timestamp.

Each key keeps its theoretical arrival time (TAT): when the next unit would be
due if the client sent at exactly the policy's rate. One unit advances it by the
emission interval `T = period / limit`; a request passes while its new TAT is
no more than `burst * T` ahead of now. That admits the same requests as a token
bucket of `burst` tokens refilled every `T`, with a single number of state.

`GCRA(limit=100, period=1.0, burst=200)` behaves like
`TokenBucket(replenish_rate=100, burst_capacity=200)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bookvault.patterns.ratelimit._validate import check_count, check_seconds
from bookvault.patterns.ratelimit.algorithm import EPSILON, Outcome

__all__ = ["GCRA"]


@dataclass(frozen=True, slots=True)
class GCRA:
    limit: int
    period: float
    burst: int | None = None  # defaults to `limit`: a whole period's quota at once

    script: ClassVar[str] = "gcra"
    tag: ClassVar[str] = "gcra"

    def __post_init__(self) -> None:
        check_count("GCRA", "limit", self.limit)
        check_seconds("GCRA", "period", self.period)
        if self.burst is not None:
            check_count("GCRA", "burst", self.burst)

    @property
    def emission_interval(self) -> float:
        """Seconds one unit advances the theoretical arrival time."""
        return self.period / self.limit

    @property
    def quota(self) -> int:
        return self.capacity

    @property
    def window(self) -> float:
        # The time to earn a full burst back: quota / window is the sustained rate.
        return self.capacity * self.emission_interval

    @property
    def capacity(self) -> int:
        return self.limit if self.burst is None else self.burst

    @property
    def default_cost(self) -> int:
        return 1

    def new_state(self) -> _ArrivalTime:
        return _ArrivalTime(self.emission_interval, self.capacity)

    def redis_args(self) -> tuple[int, float]:
        return self.capacity, self.emission_interval * 1_000_000


class _ArrivalTime:
    __slots__ = ("interval", "tat", "tolerance")

    def __init__(self, interval: float, burst: int) -> None:
        self.interval = interval
        self.tolerance = interval * burst
        self.tat = float("-inf")

    def take(self, now: float, cost: int) -> Outcome:
        interval = self.interval
        tat = self.tat if self.tat > now else now
        new_tat = tat + cost * interval
        allow_at = new_tat - self.tolerance
        if allow_at <= now + EPSILON:
            self.tat = new_tat
            return True, max(0, int((now - allow_at) / interval + EPSILON)), new_tat - now, 0.0
        remaining = max(0, int((now - tat + self.tolerance) / interval + EPSILON))
        return False, remaining, tat - now, allow_at - now
