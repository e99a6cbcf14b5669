"""A testing mode for code that retries: no waits, optionally fewer attempts.

    set_testing(True)                 # in a conftest: retries happen, sleeps do not
    set_testing(True, attempts=1)     # and nothing is retried at all

Backoff is then skipped entirely, so a suite that exercises failure paths
runs at full speed without each test injecting a fake clock.
"""

from __future__ import annotations

__all__ = ["is_testing", "max_attempts_in_testing", "set_testing"]


class _Mode:
    __slots__ = ("attempts", "enabled")

    def __init__(self) -> None:
        self.enabled = False
        self.attempts: int | None = None


_mode = _Mode()


def set_testing(enabled: bool, *, attempts: int | None = None) -> None:
    """Turn testing mode on or off for every `Retry` in the process."""
    if attempts is not None and (isinstance(attempts, bool) or attempts < 1):
        raise ValueError(f"attempts must be an integer >= 1 or None, got {attempts!r}")
    _mode.enabled = enabled
    _mode.attempts = attempts if enabled else None


def is_testing() -> bool:
    return _mode.enabled


def max_attempts_in_testing() -> int | None:
    return _mode.attempts if _mode.enabled else None
