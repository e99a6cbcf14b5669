"""The knobs of a cache, as small validated value objects.

`CachePolicy` governs the shared tier and the stampede defences; `LocalPolicy` the
in-process tier. Bad values raise `CacheConfigError` when the object is built, not
on the first request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import CacheConfigError

__all__ = ["CachePolicy", "LocalPolicy"]


def _positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise CacheConfigError(f"{name} must be a positive number of seconds, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise CacheConfigError(f"{name} must be zero or a positive number, got {value!r}")


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How long entries live and how the cache defends the loader against stampedes.

    ttl            seconds an entry is fresh (before jitter)
    jitter         each TTL is scaled by a uniform factor in [1 - jitter, 1 + jitter]
    negative_ttl   seconds a miss (loader returned None) is remembered; None: never
    stale_for      seconds an entry is kept past its TTL and served while one reader
                   refreshes it in the background (stale-while-revalidate); 0: never
    early_beta     XFetch's beta; 0 disables early recompute
    lease_ttl      seconds a cross-process fill lease lasts; bounds how long a crashed
                   filler can hold others back
    lease_wait     seconds a reader that lost the lease waits for the winner's fill
                   before loading on its own
    poll_initial, poll_max
                   first and longest pause between looks for that fill (doubling)
    retry_after    seconds the shared tier is skipped after it failed, so an outage
                   costs one timeout, not one per request
    """

    ttl: float = 300.0
    jitter: float = 0.1
    negative_ttl: float | None = 30.0
    stale_for: float = 0.0
    early_beta: float = 1.0
    lease_ttl: float = 5.0
    lease_wait: float = 2.0
    poll_initial: float = 0.002
    poll_max: float = 0.05
    retry_after: float = 1.0

    def __post_init__(self) -> None:
        _positive("ttl", self.ttl)
        if not 0.0 <= self.jitter < 1.0:
            raise CacheConfigError(f"jitter must be in [0, 1), got {self.jitter!r}")
        if self.negative_ttl is not None:
            _positive("negative_ttl", self.negative_ttl)
        _non_negative("stale_for", self.stale_for)
        _non_negative("early_beta", self.early_beta)
        _positive("lease_ttl", self.lease_ttl)
        _non_negative("lease_wait", self.lease_wait)
        _positive("poll_initial", self.poll_initial)
        _positive("poll_max", self.poll_max)
        _positive("retry_after", self.retry_after)


@dataclass(frozen=True, slots=True)
class LocalPolicy:
    """The in-process tier: at most `maxsize` entries, each kept at most `ttl` seconds
    (and never past the shared entry's own expiry).

    `ttl` is also the bound on staleness should an invalidation message be lost
    without the connection dropping; keep it short.
    """

    maxsize: int = 10_000
    ttl: float = 30.0

    def __post_init__(self) -> None:
        if self.maxsize < 1:
            raise CacheConfigError(f"maxsize must be at least 1, got {self.maxsize!r}")
        _positive("ttl", self.ttl)
