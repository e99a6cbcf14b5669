"""Resilience for asyncio callers: circuit breakers, retries with budgets, bulkheads,
deadlines and fallbacks.

    from bookvault.patterns.resilience import BreakerRegistry, Bulkhead, Policy, Retry, RetryBudget

    breakers = BreakerRegistry()
    catalog = Policy(
        retry=Retry("catalog", budget=RetryBudget()),
        breaker=breakers.get("catalog"),
        bulkhead=Bulkhead("catalog"),
        attempt_timeout=2.0,
    )
    book = await catalog.run(lambda: client.get_book(book_id), idempotent=True)

Every piece takes an injected `Clock` (`bookvault.patterns.clock`), so tests drive
time with `FakeClock`; `set_testing(True)` removes retry waits altogether.

Composition order
-----------------
`Policy` always nests the layers as

    fallback( retry( breaker( bulkhead( timeout( call ) ) ) ) )

- timeout innermost: it bounds the dependency call itself (the sooner of the
  per-attempt timeout and the deadline), so the breaker records an expired
  attempt as a failure and the bulkhead slot is freed the moment it is cancelled.
- bulkhead inside the breaker: an OPEN breaker refuses a call before it takes a
  slot or queues, and a full bulkhead raises `CallRejected`, which breakers ignore,
  so a rejection never opens the breaker. A queue wait does count in the call's
  duration: callers did wait that long, which is what slow-call detection is for.
- breaker inside retry: every attempt asks the breaker, so once it opens the
  remaining attempts are refused at once instead of hammering a dependency that
  is down (`CallNotPermitted` is not retried by default), and a backoff sleep
  holds neither a bulkhead slot nor a half-open permit.
- retry outside, bounded by the caller's deadline and the dependency's budget.
- fallback outermost: it sees the final outcome (the last error after retries,
  or a rejection) and runs once per request, not once per attempt.

Resilience4j nests Retry(CircuitBreaker(RateLimiter(TimeLimiter(Bulkhead(fn))))):
the same order except that its time limit also covers the bulkhead queue. Here
the queue wait has its own bound (`max_wait_duration`, cut to the deadline), so a
per-attempt timeout measures the dependency alone.

Where the breaker differs from Resilience4j, and why
----------------------------------------------------
- OPEN → HALF_OPEN is evaluated lazily on the next call or `state` read instead of
  by a scheduler thread; to any caller it is the same automatic transition.
- An outcome counts only in the state that permitted the call; Resilience4j
  records a late CLOSED call into the HALF_OPEN verdict.
- Cancellation is ignored, never recorded: a caller giving up says nothing about
  the dependency. `CallRejected` from inner layers is ignored too.
- A count-based window smaller than `minimum_number_of_calls` is a `ValueError`
  instead of a silent lowering of the minimum.
- Durations are seconds (floats) and rates are `None`, not -1, below the minimum.

Exceptions
----------
    Exception
     └── ResilienceError           anything this package raises itself
          ├── CallRejected         refused on this side; the dependency was never called
          │    ├── CallNotPermitted    breaker OPEN / FORCED_OPEN, or HALF_OPEN without a permit
          │    └── BulkheadFull        no free slot, and no room or time to wait for one
          └── DeadlineExceeded     the deadline passed (also a TimeoutError)

A retry that gives up re-raises the dependency's own last error, with a note
saying why it stopped; configuration errors are `ValueError` / `TypeError`.
"""

from ._breaker import CircuitBreaker
from ._breaker_config import BreakerConfig, BreakerState
from ._breaker_events import (
    BreakerCallFailed,
    BreakerCallIgnored,
    BreakerCallNotPermitted,
    BreakerCallSucceeded,
    BreakerEvent,
    BreakerListener,
    BreakerMetrics,
    BreakerRateExceeded,
    BreakerReset,
    BreakerSlowCall,
    BreakerStateChanged,
    TransitionReason,
)
from ._budget import RetryBudget, RetryBudgetMetrics
from ._bulkhead import Bulkhead, BulkheadConfig, BulkheadMetrics
from ._deadline import DEADLINE_HEADER, Deadline, current_deadline, timeout, use_deadline
from ._errors import BulkheadFull, CallNotPermitted, CallRejected, DeadlineExceeded, ResilienceError
from ._fallback import fallback
from ._filters import ExceptionFilter
from ._policy import Policy
from ._registry import BreakerRegistry
from ._retry import GiveUpReason, Retry, RetryConfig, RetryGaveUp, RetryListener, RetryScheduled
from ._retry_after import parse_retry_after, retry_after_attribute
from ._testing import is_testing, set_testing

__all__ = [
    "DEADLINE_HEADER",
    "BreakerCallFailed",
    "BreakerCallIgnored",
    "BreakerCallNotPermitted",
    "BreakerCallSucceeded",
    "BreakerConfig",
    "BreakerEvent",
    "BreakerListener",
    "BreakerMetrics",
    "BreakerRateExceeded",
    "BreakerRegistry",
    "BreakerReset",
    "BreakerSlowCall",
    "BreakerState",
    "BreakerStateChanged",
    "Bulkhead",
    "BulkheadConfig",
    "BulkheadFull",
    "BulkheadMetrics",
    "CallNotPermitted",
    "CallRejected",
    "CircuitBreaker",
    "Deadline",
    "DeadlineExceeded",
    "ExceptionFilter",
    "GiveUpReason",
    "Policy",
    "ResilienceError",
    "Retry",
    "RetryBudget",
    "RetryBudgetMetrics",
    "RetryConfig",
    "RetryGaveUp",
    "RetryListener",
    "RetryScheduled",
    "TransitionReason",
    "current_deadline",
    "fallback",
    "is_testing",
    "parse_retry_after",
    "retry_after_attribute",
    "set_testing",
    "timeout",
    "use_deadline",
]
