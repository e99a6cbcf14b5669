"""What a limiter answers: a `Decision`, and the `RatePolicy` it was made under.

A decision carries everything a response needs (allowed, remaining, when to
retry, which policy) so the caller never asks the storage twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Decision", "RatePolicy"]

# Names end up inside Redis keys (`{rl:<name>:<key>}`) and as sf-strings in
# headers: no braces (they would move the Cluster hash tag), no ':' (two
# policies could then share a key), nothing a header would need to escape.
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """A named quota as advertised to clients: `quota` units per `window` seconds.

    For windowed algorithms these are the configured limit and window; for the
    token bucket and GCRA, `quota` is the burst and `window` the time it takes
    to refill it from empty, so `quota / window` is the sustained rate.
    """

    name: str
    quota: int
    window: float

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(
                f"policy name {self.name!r} must be 1-64 characters of letters, digits, '_', '.' or '-'"
            )
        if self.quota < 1:
            raise ValueError(f"policy {self.name!r}: quota must be at least 1, got {self.quota}")
        if not self.window > 0:
            raise ValueError(f"policy {self.name!r}: window must be positive seconds, got {self.window}")


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one request.

    `remaining` and `limit` are in the policy's units (requests, or tokens when
    a request costs more than one). `reset_after` is the number of seconds
    until the key is back to its full quota; `retry_after` the seconds until a
    request of the same cost could pass (0 when allowed).

    `would_deny` is set in shadow mode: the limiter would have refused, but
    lets the request through. `degraded` is set when the shared storage could
    not answer and the limiter's failure policy decided instead.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float
    policy: RatePolicy
    would_deny: bool = False
    degraded: bool = False
