"""What every algorithm provides, so that backends stay algorithm-agnostic.

An algorithm is a frozen value object (its parameters) that knows two ways to
run itself: as an in-process state object for `MemoryBackend`, and as a Lua
script plus static arguments for `RedisBackend`. Both follow the same rules, so
a policy admits the same requests whichever backend holds it.

Conventions shared by all algorithms:
- a denied request consumes nothing (a client hammering a closed limit does
  not push its own reopening further away);
- `reset_after` is the time until the key is back to its full quota,
  `retry_after` the time until a request of the same cost would pass;
- windows are aligned to the clock's origin (the server's epoch in Redis).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["EPSILON", "Algorithm", "LocalState", "Outcome"]

# Float slack for comparisons: 0.3 s * 100 tokens/s is 29.999999999999996, and
# a client that waited exactly long enough must not be refused for it.
EPSILON = 1e-9

# allowed, remaining, reset_after (s), retry_after (s): a plain tuple, because
# the memory hot path builds one per decision.
Outcome = tuple[bool, int, float, float]


class LocalState(Protocol):
    """One key's state in process memory."""

    def take(self, now: float, cost: int) -> Outcome:
        """Decide at `now` (seconds, monotonic) whether `cost` units pass, consuming them if so."""
        ...


class Algorithm(Protocol):
    @property
    def script(self) -> str:
        """Stem of the Lua file under `lua/` that runs this algorithm in Redis."""
        ...

    @property
    def tag(self) -> str:
        """Short suffix of the Redis key, so a policy that changes algorithm never reads foreign state."""
        ...

    @property
    def quota(self) -> int:
        """Units advertised per `window` (the `q` of the RateLimit-Policy header)."""
        ...

    @property
    def window(self) -> float:
        """Seconds the quota applies to (the `w` of the RateLimit-Policy header)."""
        ...

    @property
    def capacity(self) -> int:
        """The largest cost a single request can ever have admitted."""
        ...

    @property
    def default_cost(self) -> int:
        """Units one request consumes when the caller does not say."""
        ...

    def new_state(self) -> LocalState:
        """A fresh, full state for one key in process memory."""
        ...

    def redis_args(self) -> tuple[int | float, ...]:
        """The script's arguments after the cost, in order."""
        ...
