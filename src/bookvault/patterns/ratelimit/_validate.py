"""Parameter checks shared by the algorithm value objects."""

from __future__ import annotations

__all__ = ["check_count", "check_seconds"]

# Redis-side windows are whole microseconds and expiries whole milliseconds.
_MIN_SECONDS = 0.001


def check_count(owner: str, name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a whole number of at least 1, got {value!r}")


def check_seconds(owner: str, name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= _MIN_SECONDS:
        raise ValueError(f"{owner}: {name} must be at least {_MIN_SECONDS} seconds, got {value!r}")
    if value == float("inf"):
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
