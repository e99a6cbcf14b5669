"""The errors this package raises itself (the tree is drawn in the package docstring).

Failures of the protected call are never wrapped: a retry that gives up re-raises
the last error the dependency produced, so callers keep catching what they know.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._breaker_config import BreakerState

__all__ = ["BulkheadFull", "CallNotPermitted", "CallRejected", "DeadlineExceeded", "ResilienceError"]


class ResilienceError(Exception):
    """Base of every error raised by `bookvault.patterns.resilience` itself."""


class CallRejected(ResilienceError):
    """Refused on this side: the dependency was never called.

    Breakers treat a `CallRejected` raised inside them as neither success nor
    failure, so local saturation (a full bulkhead, an inner breaker) never opens
    an outer breaker.
    """

    def __init__(self, message: str, *, name: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.name = name
        # Seconds after which trying again could succeed, when known; the default
        # `retry_after` extractor of `Retry` reads this attribute.
        self.retry_after = retry_after


class CallNotPermitted(CallRejected):
    """The breaker is OPEN or FORCED_OPEN, or HALF_OPEN with every permit taken."""

    def __init__(self, name: str, state: BreakerState, *, retry_after: float | None = None) -> None:
        hint = f"; retry in {retry_after:.3f} s" if retry_after is not None else ""
        super().__init__(
            f"circuit breaker {name!r} is {state.value} and does not permit calls{hint}",
            name=name,
            retry_after=retry_after,
        )
        self.state = state


class BulkheadFull(CallRejected):
    """No free slot, and no room (or no time) to wait for one."""

    def __init__(self, name: str, *, max_concurrent_calls: int, waited: float) -> None:
        reason = "no room to wait" if waited == 0 else f"no slot freed within {waited:.3f} s"
        super().__init__(
            f"bulkhead {name!r} is full ({max_concurrent_calls} calls in flight, {reason})",
            name=name,
        )
        self.max_concurrent_calls = max_concurrent_calls
        self.waited = waited


class DeadlineExceeded(ResilienceError, TimeoutError):
    """The caller's deadline passed before the call finished.

    Also a `TimeoutError`, so code that already handles timeouts handles this.
    """

    def __init__(self, budget: float) -> None:
        super().__init__(f"deadline exceeded (the call had {budget * 1000:.0f} ms left when it started)")
        self.budget = budget
