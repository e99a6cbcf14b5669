"""`RateLimiter`: one policy, a storage, and what to do when the storage fails.

    limiter = RateLimiter("member", TokenBucket(replenish_rate=100, burst_capacity=200), RedisBackend(redis))
    decision = await limiter.acquire(f"member:{sub}")
    if not decision.allowed:
        ...  # 429, with headers from `patterns.ratelimit.headers`

A decision against shared storage is bounded by `timeout`. When the storage
fails or times out, `on_failure` decides:

- `OnFailure.FALLBACK` (default): fail open to a local in-process limiter of
  the same algorithm, so each process still limits on its own;
- `OnFailure.ALLOW`: fail open, unlimited;
- `OnFailure.DENY`: fail closed, for routes where over-admission costs more
  than refusing (payments).

After a failure the storage is left alone for `cooldown` seconds, so an
outage costs one timeout per cooldown rather than one per request. Every
failure is counted in `stats`. In shadow mode the limiter decides and counts
but never refuses: denials come back allowed, with `would_deny` set.
"""

from __future__ import annotations

import asyncio
import enum

from bookvault.patterns.clock import Clock, SystemClock
from bookvault.patterns.ratelimit.algorithm import Algorithm
from bookvault.patterns.ratelimit.backend import Backend, Store
from bookvault.patterns.ratelimit.decision import Decision, RatePolicy
from bookvault.patterns.ratelimit.errors import InvalidCost, StorageError, StorageTimeout
from bookvault.patterns.ratelimit.memory_backend import MemoryBackend, MemoryStore

__all__ = ["LimiterStats", "OnFailure", "RateLimiter"]


class OnFailure(enum.Enum):
    FALLBACK = "fallback"
    ALLOW = "allow"
    DENY = "deny"


class LimiterStats:
    """Plain counters, for whatever metrics system the caller uses."""

    __slots__ = ("allowed", "degraded", "denied", "errors", "timeouts", "would_deny")

    def __init__(self) -> None:
        self.allowed = 0  # requests let through (shadow-mode denials included)
        self.denied = 0  # requests refused
        self.would_deny = 0  # shadow mode: refusals not enforced
        self.errors = 0  # storage calls that failed
        self.timeouts = 0  # storage calls that did not answer in time
        self.degraded = 0  # decisions made by the failure policy instead of the storage

    @property
    def failures(self) -> int:
        return self.errors + self.timeouts

    def snapshot(self) -> dict[str, int]:
        return {
            "allowed": self.allowed,
            "denied": self.denied,
            "would_deny": self.would_deny,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "failures": self.errors + self.timeouts,
            "degraded": self.degraded,
        }


class RateLimiter:
    __slots__ = (
        "_allow",
        "_capacity",
        "_clock",
        "_cooldown",
        "_default_cost",
        "_deny",
        "_fallback",
        "_fallback_capacity",
        "_local",
        "_probe_at",
        "_shadow",
        "_store",
        "_timeout",
        "last_error",
        "on_failure",
        "policy",
        "stats",
    )

    def __init__(
        self,
        name: str,
        algorithm: Algorithm,
        backend: Backend | None = None,
        *,
        timeout: float | None = 0.1,
        on_failure: OnFailure = OnFailure.FALLBACK,
        fallback: MemoryBackend | None = None,
        fallback_algorithm: Algorithm | None = None,
        cooldown: float = 1.0,
        deny_retry_after: float = 1.0,
        shadow: bool = False,
        clock: Clock | None = None,
    ) -> None:
        """
        `backend` defaults to a `MemoryBackend`. `fallback` is the memory backend
        used by `OnFailure.FALLBACK` (its clock drives the local limiter), and
        `fallback_algorithm` replaces the algorithm there, e.g. with each
        process's share of the limit. `deny_retry_after` is the Retry-After of
        decisions refused by `OnFailure.DENY`. `clock` times the cooldown.
        """
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be positive seconds or None, got {timeout!r}")
        if cooldown < 0:
            raise ValueError(f"cooldown must be zero or positive seconds, got {cooldown!r}")
        if not deny_retry_after > 0:
            raise ValueError(f"deny_retry_after must be positive seconds, got {deny_retry_after!r}")
        self.policy = RatePolicy(name, algorithm.quota, algorithm.window)
        self.on_failure = on_failure
        self.stats = LimiterStats()
        self.last_error: StorageError | None = None
        self._capacity = algorithm.capacity
        self._default_cost = algorithm.default_cost
        self._timeout = timeout
        self._cooldown = cooldown
        self._shadow = shadow
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._probe_at = 0.0
        store: Store = (backend if backend is not None else MemoryBackend()).bind(self.policy, algorithm)
        self._store = store
        # Memory cannot fail or block: decide synchronously, with no timeout around it.
        self._local = store if isinstance(store, MemoryStore) else None
        self._fallback: MemoryStore | None = None
        self._fallback_capacity = 0
        if on_failure is OnFailure.FALLBACK and self._local is None:
            local = fallback_algorithm if fallback_algorithm is not None else algorithm
            self._fallback = (fallback if fallback is not None else MemoryBackend()).bind(
                RatePolicy(name, local.quota, local.window), local, degraded=True
            )
            self._fallback_capacity = local.capacity
        quota = self.policy.quota
        self._allow = Decision(True, quota, quota, 0.0, 0.0, self.policy, False, True)
        self._deny = Decision(False, quota, 0, deny_retry_after, deny_retry_after, self.policy, False, True)

    @property
    def store(self) -> Store:
        return self._store

    async def acquire(self, key: str, cost: int | None = None) -> Decision:
        """Decide for `key`, consuming `cost` units (default: the algorithm's) if they pass."""
        if cost is None:
            cost = self._default_cost
        elif not 0 < cost <= self._capacity:
            raise InvalidCost(
                f"cost {cost!r} for policy {self.policy.name!r} must be between 1 and {self._capacity}; "
                "a larger cost could never be admitted"
            )
        local = self._local
        if local is not None:
            decision = local.take_now(key, cost)
        else:
            decision = await self._take_shared(key, cost)
        if decision.allowed:
            self.stats.allowed += 1
            return decision
        if self._shadow:
            self.stats.allowed += 1
            self.stats.would_deny += 1
            return Decision(
                True,
                decision.limit,
                decision.remaining,
                decision.reset_after,
                0.0,
                decision.policy,
                True,
                decision.degraded,
            )
        self.stats.denied += 1
        return decision

    async def _take_shared(self, key: str, cost: int) -> Decision:
        if self._probe_at and self._clock.monotonic() < self._probe_at:
            return self._degrade(key, cost)
        try:
            async with asyncio.timeout(self._timeout):
                decision = await self._store.take(key, cost)
        except TimeoutError:
            self.stats.timeouts += 1
            self.last_error = StorageTimeout(
                f"rate-limit storage for policy {self.policy.name!r} did not answer within {self._timeout} s"
            )
        except StorageError as exc:
            self.stats.errors += 1
            self.last_error = exc
        else:
            self._probe_at = 0.0
            return decision
        if self._cooldown:
            self._probe_at = self._clock.monotonic() + self._cooldown
        return self._degrade(key, cost)

    def _degrade(self, key: str, cost: int) -> Decision:
        self.stats.degraded += 1
        fallback = self._fallback
        if fallback is not None:
            # A smaller fallback algorithm may not hold the full cost; charge what it can.
            return fallback.take_now(key, min(cost, self._fallback_capacity))
        if self.on_failure is OnFailure.ALLOW:
            return self._allow
        return self._deny
