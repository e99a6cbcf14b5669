"""Token bucket with Spring Cloud Gateway's `RedisRateLimiter` parameters.

The bucket holds up to `burst_capacity` tokens and refills continuously at
`replenish_rate` tokens per second; a request takes `requested_tokens` (or the
cost it is given). So `TokenBucket(replenish_rate=100, burst_capacity=200)`
admits a burst of 200 at once, then 100 per second; and, as in Spring,
`TokenBucket(replenish_rate=1, burst_capacity=60, requested_tokens=60)` is
one request per minute.

Unlike Spring's script, which reads the clock in whole seconds, refill is
computed to the microsecond, and a full bucket is simply a missing key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bookvault.patterns.ratelimit._validate import check_count
from bookvault.patterns.ratelimit.algorithm import EPSILON, Outcome

__all__ = ["TokenBucket"]


@dataclass(frozen=True, slots=True)
class TokenBucket:
    replenish_rate: float
    burst_capacity: int
    requested_tokens: int = 1

    script: ClassVar[str] = "token_bucket"
    tag: ClassVar[str] = "tb"

    def __post_init__(self) -> None:
        rate = self.replenish_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < float("inf"):
            raise ValueError(f"TokenBucket: replenish_rate must be positive tokens per second, got {rate!r}")
        check_count("TokenBucket", "burst_capacity", self.burst_capacity)
        check_count("TokenBucket", "requested_tokens", self.requested_tokens)
        if self.requested_tokens > self.burst_capacity:
            raise ValueError(
                f"TokenBucket: requested_tokens ({self.requested_tokens}) exceeds burst_capacity "
                f"({self.burst_capacity}), so no request could ever pass; raise burst_capacity"
            )

    @property
    def quota(self) -> int:
        return self.burst_capacity

    @property
    def window(self) -> float:
        # The time to refill from empty: quota / window is the sustained rate.
        return self.burst_capacity / self.replenish_rate

    @property
    def capacity(self) -> int:
        return self.burst_capacity

    @property
    def default_cost(self) -> int:
        return self.requested_tokens

    def new_state(self) -> _Bucket:
        return _Bucket(float(self.burst_capacity), float(self.replenish_rate))

    def redis_args(self) -> tuple[int, float]:
        return self.burst_capacity, float(self.replenish_rate)


class _Bucket:
    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, capacity: float, rate: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.stamp = float("-inf")

    def take(self, now: float, cost: int) -> Outcome:
        rate = self.rate
        capacity = self.capacity
        elapsed = now - self.stamp
        tokens = self.tokens + elapsed * rate if elapsed > 0 else self.tokens
        if tokens > capacity:
            tokens = capacity
        if tokens + EPSILON < cost:
            return False, int(tokens + EPSILON), (capacity - tokens) / rate, (cost - tokens) / rate
        tokens -= cost
        self.tokens = tokens
        self.stamp = now
        return True, max(0, int(tokens + EPSILON)), (capacity - tokens) / rate, 0.0
