"""What the windowed algorithms share: `limit` units per `window` seconds.

`FixedWindow`, `SlidingWindow` and `SlidingLog` take the same parameters, check
them the same way, advertise them as the same quota and pass them to their
scripts as the same arguments; only their state and script differ.
"""

from __future__ import annotations

from dataclasses import dataclass

from bookvault.patterns.ratelimit._validate import check_count, check_seconds

__all__ = ["WindowedAlgorithm"]


@dataclass(frozen=True, slots=True)
class WindowedAlgorithm:
    limit: int
    window: float

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_count(owner, "limit", self.limit)
        check_seconds(owner, "window", self.window)

    @property
    def quota(self) -> int:
        return self.limit

    @property
    def capacity(self) -> int:
        return self.limit

    @property
    def default_cost(self) -> int:
        return 1

    def redis_args(self) -> tuple[int, int]:
        return self.limit, round(self.window * 1_000_000)
