"""What a circuit breaker tells its listeners, and the metrics snapshot it gives.

Events are built only when a listener is registered, so an unobserved breaker
allocates nothing per call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from ._breaker_config import BreakerState

__all__ = [
    "BreakerCallFailed",
    "BreakerCallIgnored",
    "BreakerCallNotPermitted",
    "BreakerCallSucceeded",
    "BreakerEvent",
    "BreakerListener",
    "BreakerMetrics",
    "BreakerRateExceeded",
    "BreakerReset",
    "BreakerSlowCall",
    "BreakerStateChanged",
    "TransitionReason",
]

TransitionReason: TypeAlias = Literal[
    "failure_rate",  # the failure rate reached its threshold (from CLOSED or HALF_OPEN)
    "slow_call_rate",  # the slow-call rate reached its threshold (from CLOSED or HALF_OPEN)
    "wait_elapsed",  # OPEN lasted `wait_duration_in_open_state`
    "probes_passed",  # the HALF_OPEN probe calls stayed under both thresholds
    "max_wait_in_half_open",  # HALF_OPEN lasted `max_wait_duration_in_half_open_state`
    "manual",  # a transition_to_* method was called
    "reset",  # reset() was called
]


@dataclass(frozen=True, slots=True)
class BreakerStateChanged:
    name: str
    from_state: BreakerState
    to_state: BreakerState
    reason: TransitionReason


@dataclass(frozen=True, slots=True)
class BreakerCallSucceeded:
    name: str
    duration: float
    """Seconds the call took."""


@dataclass(frozen=True, slots=True)
class BreakerCallFailed:
    name: str
    duration: float
    error: BaseException | None
    """The recorded exception, or None when `record_result` rejected a returned value."""
    result: Any = None


@dataclass(frozen=True, slots=True)
class BreakerCallIgnored:
    name: str
    duration: float
    error: BaseException


@dataclass(frozen=True, slots=True)
class BreakerCallNotPermitted:
    name: str
    state: BreakerState


@dataclass(frozen=True, slots=True)
class BreakerSlowCall:
    """Sent after the success or failure event of a call slower than the threshold."""

    name: str
    duration: float
    failed: bool


@dataclass(frozen=True, slots=True)
class BreakerRateExceeded:
    """A window evaluation found a rate at or over its threshold.

    In CLOSED and HALF_OPEN it precedes the move to OPEN; in METRICS_ONLY it is sent
    once each time a rate crosses its threshold, since the breaker will not open.
    """

    name: str
    failure_rate: float
    slow_call_rate: float


@dataclass(frozen=True, slots=True)
class BreakerReset:
    name: str


BreakerEvent: TypeAlias = (
    BreakerStateChanged
    | BreakerCallSucceeded
    | BreakerCallFailed
    | BreakerCallIgnored
    | BreakerCallNotPermitted
    | BreakerSlowCall
    | BreakerRateExceeded
    | BreakerReset
)
BreakerListener: TypeAlias = Callable[[BreakerEvent], None]


@dataclass(frozen=True, slots=True)
class BreakerMetrics:
    name: str
    state: BreakerState
    failure_rate: float | None
    """Percent of buffered calls that failed; None until the window holds the minimum calls."""
    slow_call_rate: float | None
    """Percent of buffered calls that were slow; None until the window holds the minimum calls."""
    buffered_calls: int
    failed_calls: int
    slow_calls: int
    not_permitted_calls: int
    """Calls refused since the breaker was created or last reset (a counter, never windowed)."""
