"""Circuit breaker configuration and states.

Defaults are the values of the design seed (Resilience4j names, Python units:
durations in seconds, rates in percent).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ._filters import ExceptionFilter, validate_filter

__all__ = ["BreakerConfig", "BreakerState"]


class BreakerState(enum.Enum):
    CLOSED = "closed"  # calls flow; outcomes fill the sliding window
    OPEN = "open"  # calls are refused until `wait_duration_in_open_state` has passed
    HALF_OPEN = "half_open"  # a few probe calls decide between CLOSED and OPEN
    DISABLED = "disabled"  # calls flow; nothing is recorded, the state never changes by itself
    FORCED_OPEN = "forced_open"  # calls are refused until someone changes the state
    METRICS_ONLY = "metrics_only"  # calls flow and are measured, but the breaker never opens


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failure_rate_threshold: float = 50.0
    """Open when this percentage of the window's calls failed (≥, in (0, 100])."""
    slow_call_rate_threshold: float = 100.0
    """Open when this percentage of the window's calls were slow (≥, in (0, 100])."""
    slow_call_duration_threshold: float = 60.0
    """Seconds after which a call counts as slow (strictly longer than this)."""
    sliding_window_type: Literal["count_based", "time_based"] = "count_based"
    """`count_based`: the last `sliding_window_size` calls; `time_based`: the last
    `sliding_window_size` seconds."""
    sliding_window_size: int = 10
    minimum_number_of_calls: int = 5
    """Calls the window must hold before any rate is computed (and the breaker may open)."""
    permitted_number_of_calls_in_half_open_state: int = 3
    wait_duration_in_open_state: float = 10.0
    """Seconds to refuse calls before probing the dependency again."""
    max_wait_duration_in_half_open_state: float | None = None
    """Seconds HALF_OPEN may last before falling back to OPEN; `None` waits for the probes."""
    record_exceptions: ExceptionFilter = (Exception,)
    """Exceptions that count as failures. Others that are not ignored count as successes."""
    ignore_exceptions: ExceptionFilter = ()
    """Exceptions that count as neither success nor failure (checked first)."""
    record_result: Callable[[Any], bool] | None = None
    """Return True for a result that should count as a failure (say, a 503 response)."""

    def __post_init__(self) -> None:
        _percentage("failure_rate_threshold", self.failure_rate_threshold)
        _percentage("slow_call_rate_threshold", self.slow_call_rate_threshold)
        if not self.slow_call_duration_threshold > 0:
            raise ValueError(
                f"slow_call_duration_threshold must be > 0 seconds, got {self.slow_call_duration_threshold!r}"
            )
        if self.sliding_window_type not in ("count_based", "time_based"):
            raise ValueError(
                f"sliding_window_type must be 'count_based' or 'time_based', got {self.sliding_window_type!r}"
            )
        _at_least_one("sliding_window_size", self.sliding_window_size)
        _at_least_one("minimum_number_of_calls", self.minimum_number_of_calls)
        _at_least_one(
            "permitted_number_of_calls_in_half_open_state", self.permitted_number_of_calls_in_half_open_state
        )
        if (
            self.sliding_window_type == "count_based"
            and self.minimum_number_of_calls > self.sliding_window_size
        ):
            # Resilience4j silently lowers the minimum; a breaker that looks configured
            # to need 20 calls but opens after 10 is a surprise, so say it instead.
            raise ValueError(
                f"minimum_number_of_calls ({self.minimum_number_of_calls}) exceeds sliding_window_size "
                f"({self.sliding_window_size}) of a count_based window, so the breaker could never open; "
                "lower minimum_number_of_calls or enlarge the window"
            )
        if not self.wait_duration_in_open_state >= 0:
            raise ValueError(
                f"wait_duration_in_open_state must be >= 0 seconds, got {self.wait_duration_in_open_state!r}"
            )
        max_wait = self.max_wait_duration_in_half_open_state
        if max_wait is not None and not max_wait > 0:
            raise ValueError(
                "max_wait_duration_in_half_open_state must be > 0 seconds, or None to wait for the "
                f"probe calls, got {max_wait!r}"
            )
        validate_filter(self.record_exceptions, field="record_exceptions")
        validate_filter(self.ignore_exceptions, field="ignore_exceptions")
        if self.record_result is not None and not callable(self.record_result):
            raise TypeError(f"record_result must be a predicate or None, got {self.record_result!r}")


def _percentage(field: str, value: float) -> None:
    if not 0 < value <= 100:
        raise ValueError(f"{field} must be a percentage in (0, 100], got {value!r}")


def _at_least_one(field: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{field} must be an integer >= 1, got {value!r}")
