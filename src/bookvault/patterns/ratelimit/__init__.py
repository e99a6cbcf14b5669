"""Rate limiting that holds across processes.

Five algorithms, one module each, every one runnable in process memory or in
Redis with the same admits:

    FixedWindow(limit, window)            counter per aligned window
    SlidingWindow(limit, window)          current + weighted previous window
    SlidingLog(limit, window)             exact, one entry per admitted unit
    TokenBucket(replenish_rate, burst_capacity, requested_tokens=1)
                                          Spring Cloud Gateway's parameters
    GCRA(limit, period, burst=None)       a token bucket as one timestamp

    limiter = RateLimiter("member", TokenBucket(100, 200), RedisBackend(redis))
    decision = await limiter.acquire("member:42")

A Redis decision is one EVALSHA of an atomic Lua script on the server's clock;
a memory decision is a few microseconds. The limiter bounds storage calls with
a timeout, applies a failure policy (`OnFailure`) when they fail, counts every
failure, and can run in shadow mode. `headers` formats and parses the IETF
RateLimit fields.

Errors:

    RateLimitError
     ├── InvalidCost        a request's cost can never be admitted (also a ValueError)
     ├── MalformedField     a RateLimit field value does not parse (also a ValueError)
     └── StorageError       the shared storage could not decide
          └── StorageTimeout  it did not answer in time
"""

from __future__ import annotations

from bookvault.patterns.ratelimit.algorithm import Algorithm, LocalState
from bookvault.patterns.ratelimit.backend import Backend, Store
from bookvault.patterns.ratelimit.decision import Decision, RatePolicy
from bookvault.patterns.ratelimit.errors import (
    InvalidCost,
    MalformedField,
    RateLimitError,
    StorageError,
    StorageTimeout,
)
from bookvault.patterns.ratelimit.fixed_window import FixedWindow
from bookvault.patterns.ratelimit.gcra import GCRA
from bookvault.patterns.ratelimit.headers import (
    format_ratelimit,
    format_ratelimit_policy,
    format_retry_after,
    parse_ratelimit,
    parse_ratelimit_policy,
    quota_exceeded_problem,
    rate_limit_headers,
)
from bookvault.patterns.ratelimit.limiter import LimiterStats, OnFailure, RateLimiter
from bookvault.patterns.ratelimit.memory_backend import MemoryBackend, MemoryStore
from bookvault.patterns.ratelimit.redis_backend import RedisBackend, RedisClient, RedisStore
from bookvault.patterns.ratelimit.sliding_log import SlidingLog
from bookvault.patterns.ratelimit.sliding_window import SlidingWindow
from bookvault.patterns.ratelimit.token_bucket import TokenBucket

__all__ = [
    "GCRA",
    "Algorithm",
    "Backend",
    "Decision",
    "FixedWindow",
    "InvalidCost",
    "LimiterStats",
    "LocalState",
    "MalformedField",
    "MemoryBackend",
    "MemoryStore",
    "OnFailure",
    "RateLimitError",
    "RateLimiter",
    "RatePolicy",
    "RedisBackend",
    "RedisClient",
    "RedisStore",
    "SlidingLog",
    "SlidingWindow",
    "StorageError",
    "StorageTimeout",
    "Store",
    "TokenBucket",
    "format_ratelimit",
    "format_ratelimit_policy",
    "format_retry_after",
    "parse_ratelimit",
    "parse_ratelimit_policy",
    "quota_exceeded_problem",
    "rate_limit_headers",
]
