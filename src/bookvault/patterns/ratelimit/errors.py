"""Errors raised by `patterns.ratelimit`.

    RateLimitError
     ├── InvalidCost        a request's cost can never be admitted by the policy (also a ValueError)
     ├── MalformedField     a RateLimit / RateLimit-Policy field value does not parse (also a ValueError)
     └── StorageError       the shared storage could not decide (connection, protocol, script)
          └── StorageTimeout  it did not answer within the limiter's timeout

A `RateLimiter` never lets a `StorageError` escape: its failure policy decides
instead and the failure is counted. Stores raise them when used directly.
"""

from __future__ import annotations

__all__ = ["InvalidCost", "MalformedField", "RateLimitError", "StorageError", "StorageTimeout"]


class RateLimitError(Exception):
    """Base class of every error this package raises."""


class InvalidCost(RateLimitError, ValueError):
    """The cost is below 1 or above what the policy could ever admit at once."""


class MalformedField(RateLimitError, ValueError):
    """A header field value is not what the RateLimit fields draft allows."""


class StorageError(RateLimitError):
    """The storage behind a limiter failed to make a decision."""


class StorageTimeout(StorageError):
    """The storage did not answer in time."""
