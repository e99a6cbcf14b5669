"""How many consumer processes to run for a given stream lag: pure logic, with a
clock, so the supervisor's decisions are testable without processes or waits.

Up fast, down slowly: one more process as soon as the lag per process passes
`lag_per_worker`, one fewer only after the lag has stayed low for `cooldown_s`
(so a burst that drains does not make processes flap).
"""

from __future__ import annotations

import math

from bookvault.patterns.clock import Clock

__all__ = ["Autoscaler", "wanted_workers"]


def wanted_workers(lag: int, *, minimum: int, maximum: int, lag_per_worker: int) -> int:
    """Enough processes for each to have at most `lag_per_worker` of the lag, within bounds."""
    if not 1 <= minimum <= maximum:
        raise ValueError(f"worker bounds must satisfy 1 <= min <= max, got {minimum}..{maximum}")
    if lag_per_worker < 1:
        raise ValueError(f"lag per worker must be at least 1, got {lag_per_worker}")
    return max(minimum, min(maximum, math.ceil(max(lag, 0) / lag_per_worker)))


class Autoscaler:
    __slots__ = ("_clock", "_cooldown_s", "_lag_per_worker", "_low_since", "maximum", "minimum")

    def __init__(
        self, clock: Clock, *, minimum: int, maximum: int, lag_per_worker: int, cooldown_s: float = 30.0
    ) -> None:
        wanted_workers(0, minimum=minimum, maximum=maximum, lag_per_worker=lag_per_worker)  # validates
        self._clock = clock
        self.minimum = minimum
        self.maximum = maximum
        self._lag_per_worker = lag_per_worker
        self._cooldown_s = cooldown_s
        self._low_since: float | None = None

    def decide(self, lag: int | None, running: int) -> int:
        """The number of processes to run now, given the lag (None: unknown, e.g.
        Redis is down, so keep what runs) and how many run."""
        if lag is None:
            self._low_since = None
            return max(self.minimum, min(self.maximum, running))
        wanted = wanted_workers(
            lag, minimum=self.minimum, maximum=self.maximum, lag_per_worker=self._lag_per_worker
        )
        if wanted >= running:
            self._low_since = None
            return wanted
        now = self._clock.monotonic()
        if self._low_since is None:
            self._low_since = now
        if now - self._low_since < self._cooldown_s:
            return running
        # One step at a time, with a fresh cooldown before the next.
        self._low_since = now
        return running - 1
