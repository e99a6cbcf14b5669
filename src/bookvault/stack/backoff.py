"""How long to wait before restarting a process that crashed."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class RestartBackoff:
    """Exponential delays, capped; a process that ran `stable_after_s` counts as healthy
    again, so one crash a day does not grow the delay forever."""

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    stable_after_s: float = 30.0

    def delay(self, consecutive_crashes: int) -> float:
        if consecutive_crashes < 1:
            return 0.0
        return float(min(self.max_s, self.initial_s * self.factor ** (consecutive_crashes - 1)))

    def crashes_after(self, previous: int, ran_for_s: float) -> int:
        """The consecutive crash count once a process that ran `ran_for_s` crashed."""
        return 1 if ran_for_s >= self.stable_after_s else previous + 1
