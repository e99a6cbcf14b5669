"""A retry budget shared by every caller of one dependency (Envoy's idea).

    catalog_budget = RetryBudget()                         # 20% of requests, at least 3/s
    Retry("catalog", budget=catalog_budget)

Retries are allowed only while, over the last `window` seconds,

    retries < max(ratio * requests, min_retries_per_second * window)

so when a dependency fails completely, callers add at most `ratio` more load
instead of multiplying it by `max_attempts` (a retry storm). The floor keeps a
quiet dependency retryable: with 2 requests a minute, 20% would mean never.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..clock import Clock, SystemClock

__all__ = ["RetryBudget", "RetryBudgetMetrics"]


@dataclass(frozen=True, slots=True)
class RetryBudgetMetrics:
    requests: int
    """Requests seen in the window."""
    retries: int
    """Retries spent in the window."""
    allowed: float
    """Retries the window allows at present."""
    rejected: int
    """Retries refused since the budget was made (a counter)."""


class RetryBudget:
    __slots__ = (
        "_bucket_requests",
        "_bucket_retries",
        "_clock",
        "_floor",
        "_head",
        "_requests",
        "_retries",
        "_window",
        "ratio",
        "rejected",
    )

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_retries_per_second: float = 3.0,
        window: int = 10,
        clock: Clock | None = None,
    ) -> None:
        if not ratio >= 0:
            raise ValueError(f"ratio must be >= 0 (0.2 allows retries for 20% of requests), got {ratio!r}")
        if not min_retries_per_second >= 0:
            raise ValueError(f"min_retries_per_second must be >= 0, got {min_retries_per_second!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a whole number of seconds >= 1, got {window!r}")
        self.ratio = ratio
        self._floor = min_retries_per_second * window
        self._window = window
        self._clock = clock if clock is not None else SystemClock()
        # One-second buckets with running totals, as in the breaker's time window.
        self._bucket_requests = [0] * window
        self._bucket_retries = [0] * window
        self._head = int(self._clock.monotonic())
        self._requests = 0
        self._retries = 0
        self.rejected = 0

    def record_request(self) -> None:
        """Count one original request (not its retries)."""
        i = self._advance()
        self._bucket_requests[i] += 1
        self._requests += 1

    def try_acquire(self) -> bool:
        """Spend one retry if the budget allows it; False (and counted) if not."""
        i = self._advance()
        if self._retries >= self._allowed():
            self.rejected += 1
            return False
        self._bucket_retries[i] += 1
        self._retries += 1
        return True

    def metrics(self) -> RetryBudgetMetrics:
        self._advance()
        return RetryBudgetMetrics(self._requests, self._retries, self._allowed(), self.rejected)

    def _allowed(self) -> float:
        by_ratio = self.ratio * self._requests
        return by_ratio if by_ratio > self._floor else self._floor

    def _advance(self) -> int:
        """Age out buckets older than the window; return the current bucket's index."""
        second = int(self._clock.monotonic())
        head = self._head
        size = self._window
        if second > head:
            if second - head >= size:
                self._bucket_requests = [0] * size
                self._bucket_retries = [0] * size
                self._requests = self._retries = 0
            else:
                requests, retries = self._bucket_requests, self._bucket_retries
                for s in range(head + 1, second + 1):
                    j = s % size
                    self._requests -= requests[j]
                    self._retries -= retries[j]
                    requests[j] = retries[j] = 0
            self._head = second
        return self._head % size
