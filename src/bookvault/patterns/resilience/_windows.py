"""Sliding windows of call outcomes for the circuit breaker.

Both keep running totals and subtract what falls out of the window, so reading the
failure and slow-call counts is O(1) however large the window is.

- `CountWindow` holds the outcomes of the last N calls in a ring.
- `TimeWindow` holds the last N seconds as N one-second buckets; a bucket is
  emptied (and subtracted from the totals) when time moves past it. Moving across
  a gap touches at most N buckets, so recording stays amortised O(1).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["FAILED", "SLOW", "CountWindow", "SlidingWindow", "TimeWindow"]

# An outcome is a bit set, so recording one is integer arithmetic with no allocation.
FAILED = 1
SLOW = 2


class SlidingWindow(Protocol):
    calls: int
    failed: int
    slow: int

    def record(self, outcome: int, now: float) -> None:
        """Add one outcome (a combination of `FAILED` and `SLOW`, 0 for a fast success)."""

    def refresh(self, now: float) -> None:
        """Drop what has aged out, so the totals describe the window ending at `now`."""


class CountWindow:
    __slots__ = ("_pos", "_ring", "_size", "calls", "failed", "slow")

    def __init__(self, size: int) -> None:
        self._ring = [-1] * size  # -1: slot not filled yet
        self._size = size
        self._pos = 0
        self.calls = 0
        self.failed = 0
        self.slow = 0

    def record(self, outcome: int, now: float) -> None:
        ring = self._ring
        pos = self._pos
        evicted = ring[pos]
        ring[pos] = outcome
        pos += 1
        self._pos = 0 if pos == self._size else pos
        # Branches skip the counter updates for fast successes, the common case.
        if evicted < 0:
            self.calls += 1
        elif evicted:
            self.failed -= evicted & FAILED
            self.slow -= (evicted & SLOW) >> 1
        if outcome:
            self.failed += outcome & FAILED
            self.slow += (outcome & SLOW) >> 1

    def refresh(self, now: float) -> None:
        # Outcomes leave a count window only when newer ones push them out.
        return


class TimeWindow:
    __slots__ = (
        "_bucket_calls",
        "_bucket_failed",
        "_bucket_slow",
        "_head",
        "_size",
        "calls",
        "failed",
        "slow",
    )

    def __init__(self, seconds: int, now: float) -> None:
        self._size = seconds
        # Parallel lists of ints instead of bucket objects: no per-bucket allocation.
        self._bucket_calls = [0] * seconds
        self._bucket_failed = [0] * seconds
        self._bucket_slow = [0] * seconds
        self._head = int(now)  # the second the newest bucket stands for
        self.calls = 0
        self.failed = 0
        self.slow = 0

    def record(self, outcome: int, now: float) -> None:
        second = int(now)
        if second != self._head:
            self._advance(second)
        i = second % self._size
        failed = outcome & FAILED
        slow = (outcome & SLOW) >> 1
        self._bucket_calls[i] += 1
        self._bucket_failed[i] += failed
        self._bucket_slow[i] += slow
        self.calls += 1
        self.failed += failed
        self.slow += slow

    def refresh(self, now: float) -> None:
        second = int(now)
        if second != self._head:
            self._advance(second)

    def _advance(self, second: int) -> None:
        head = self._head
        if second <= head:
            # A monotonic clock never goes back; tolerate a caller's stale `now` anyway.
            return
        size = self._size
        if second - head >= size:
            # Everything has aged out: cheaper to clear than to evict bucket by bucket.
            self._bucket_calls = [0] * size
            self._bucket_failed = [0] * size
            self._bucket_slow = [0] * size
            self.calls = self.failed = self.slow = 0
        else:
            calls, failed, slow = self._bucket_calls, self._bucket_failed, self._bucket_slow
            for s in range(head + 1, second + 1):
                i = s % size
                self.calls -= calls[i]
                self.failed -= failed[i]
                self.slow -= slow[i]
                calls[i] = failed[i] = slow[i] = 0
        self._head = second
