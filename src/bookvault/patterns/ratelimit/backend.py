"""The storage interface every limiter is built on.

A `Backend` holds state for many policies; binding it to one policy and
algorithm gives a `Store`, which decides for one key at a time. Binding is
where a backend checks, once, that it can run the algorithm (the Redis
backend loads its Lua source there), so the per-request path does no lookups.
"""

from __future__ import annotations

from typing import Protocol

from bookvault.patterns.ratelimit.algorithm import Algorithm
from bookvault.patterns.ratelimit.decision import Decision, RatePolicy

__all__ = ["Backend", "Store"]


class Store(Protocol):
    async def take(self, key: str, cost: int) -> Decision:
        """Decide for `key`, consuming `cost` units if they pass.

        Raises `StorageError` when the storage cannot decide.
        """
        ...


class Backend(Protocol):
    def bind(self, policy: RatePolicy, algorithm: Algorithm, *, degraded: bool = False) -> Store:
        """A store for one policy. `degraded` marks its decisions as made by a
        failure policy rather than the shared storage."""
        ...
