"""Retries with capped exponential backoff and full jitter, within a deadline and a budget.

    retry = Retry("catalog", RetryConfig(retry_on=(ConnectionError, TimeoutError)), budget=catalog_budget)
    book = await retry.run(lambda: client.get_book(book_id), idempotent=True)

Before retry n (n = 1, 2, …) it sleeps a uniformly random time in
[0, min(max_wait, initial_wait · multiplier^(n-1))] ("full jitter": clients that
failed together do not come back together). It stops, returning the last result
or re-raising the last error unchanged (with a note saying why), when:

- the operation is not marked safe to repeat (`idempotent=True`, or an
  `idempotency_key` the operation sends) — a request that changes state is never
  sent twice by accident;
- `max_attempts` attempts have been made;
- the failure asks to wait (`retry_after`) longer than `max_retry_after`: coming
  back earlier would be refused again, waiting longer would hold the caller;
- the wait would reach the deadline (the `deadline` argument or the current one
  from `use_deadline`): nobody would be left to receive the answer;
- the shared `RetryBudget` has no retry left.

A `retry_after` hint from the failure is a minimum: the wait is the larger of the
hint and the jittered backoff.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, TypeAlias, TypeVar

from ..clock import Clock, SystemClock
from ._budget import RetryBudget
from ._deadline import Deadline, current_deadline, earliest
from ._filters import ExceptionFilter, compile_filter, validate_filter
from ._retry_after import retry_after_attribute
from ._testing import is_testing, max_attempts_in_testing

__all__ = ["GiveUpReason", "Retry", "RetryConfig", "RetryGaveUp", "RetryListener", "RetryScheduled"]

P = ParamSpec("P")
T = TypeVar("T")

_log = logging.getLogger("bookvault.patterns.resilience")

# Jitter spreads load; it needs no unpredictability, so the fast PRNG is right.
_RANDOM = random.Random()  # noqa: S311


@dataclass(frozen=True, slots=True)
class RetryConfig:
    # Seed 002: maxAttempts 3, waitDuration 1000 ms, exponentialBackoffMultiplier 2.
    max_attempts: int = 3
    """Attempts in total, the first included."""
    initial_wait: float = 1.0
    """Seconds: the upper bound of the first (jittered) wait."""
    multiplier: float = 2.0
    max_wait: float = 30.0
    """Seconds: the cap on any wait's upper bound."""
    retry_on: ExceptionFilter = (ConnectionError, TimeoutError)
    """Exceptions worth another attempt. Not everything: a bug fails the same way twice."""
    retry_on_result: Callable[[Any], bool] | None = None
    """Return True for a result worth another attempt (say, a 503 response)."""
    retry_after: Callable[[Any], float | None] | None = retry_after_attribute
    """Given the exception or result, the seconds the dependency asked us to wait, or None."""
    max_retry_after: float = 60.0
    """Seconds: a longer `retry_after` ends the retrying instead of being waited out."""

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise ValueError(
                f"max_attempts must be an integer >= 1 (1 means no retry), got {self.max_attempts!r}"
            )
        if not self.initial_wait >= 0:
            raise ValueError(f"initial_wait must be >= 0 seconds, got {self.initial_wait!r}")
        if not self.multiplier >= 1:
            raise ValueError(f"multiplier must be >= 1 (waits never shrink), got {self.multiplier!r}")
        if not self.max_wait >= self.initial_wait:
            raise ValueError(
                f"max_wait ({self.max_wait!r} s) must be >= initial_wait ({self.initial_wait!r} s)"
            )
        if not self.max_retry_after >= 0:
            raise ValueError(f"max_retry_after must be >= 0 seconds, got {self.max_retry_after!r}")
        validate_filter(self.retry_on, field="retry_on")
        for field in ("retry_on_result", "retry_after"):
            value = getattr(self, field)
            if value is not None and not callable(value):
                raise TypeError(f"{field} must be a callable or None, got {value!r}")


GiveUpReason: TypeAlias = Literal[
    "not_idempotent", "max_attempts", "retry_after_too_long", "deadline", "budget"
]


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    name: str
    attempt: int
    """The attempt that just failed (1 for the first)."""
    delay: float
    error: BaseException | None
    result: Any = None


@dataclass(frozen=True, slots=True)
class RetryGaveUp:
    """A failure worth retrying was not retried; `reason` says why."""

    name: str
    attempts: int
    reason: GiveUpReason
    error: BaseException | None
    result: Any = None


RetryListener: TypeAlias = Callable[[RetryScheduled | RetryGaveUp], None]

_EXPLANATIONS: dict[GiveUpReason, str] = {
    "not_idempotent": "not marked safe to repeat (pass idempotent=True or an idempotency_key)",
    "max_attempts": "no attempts left",
    "retry_after_too_long": "the dependency asked to wait longer than max_retry_after",
    "deadline": "the next attempt could not start before the deadline",
    "budget": "the retry budget for this dependency is spent",
}


class Retry:
    __slots__ = ("_clock", "_listeners", "_random", "_retry_on", "budget", "config", "name")

    def __init__(
        self,
        name: str = "default",
        config: RetryConfig | None = None,
        *,
        budget: RetryBudget | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.config = config if config is not None else RetryConfig()
        self.budget = budget
        self._clock = clock if clock is not None else SystemClock()
        self._random = rng if rng is not None else _RANDOM
        self._retry_on = compile_filter(self.config.retry_on)
        self._listeners: tuple[RetryListener, ...] = ()

    def __repr__(self) -> str:
        return f"<Retry {self.name!r} max_attempts={self.config.max_attempts}>"

    def add_listener(self, listener: RetryListener) -> None:
        self._listeners = (*self._listeners, listener)

    async def run(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        idempotent: bool = False,
        idempotency_key: str | None = None,
        deadline: Deadline | None = None,
    ) -> T:
        """Await `operation()`, again on a retryable failure, as the rules above allow.

        `operation` is called afresh for each attempt; an idempotency key must be the
        same on every attempt, so build it outside and let `operation` send it.
        """
        if self.budget is not None:
            self.budget.record_request()
        deadline = earliest(deadline, current_deadline())
        safe = idempotent or idempotency_key is not None
        config = self.config
        ceiling = config.initial_wait
        attempt = 1
        while True:
            try:
                result = await operation()
            except Exception as exc:
                if not self._retry_on(exc):
                    raise
                delay = self._next_delay(attempt, ceiling, safe, deadline, exc, None)
                if delay is None:
                    raise
            else:
                retry_on_result = config.retry_on_result
                if retry_on_result is None or not retry_on_result(result):
                    return result
                delay = self._next_delay(attempt, ceiling, safe, deadline, None, result)
                if delay is None:
                    # Giving up on a result hands back that result: the caller can still read it.
                    return result
            if delay > 0:
                await self._clock.sleep(delay)
            attempt += 1
            # Grown step by step and capped, so no power is computed (nor overflows).
            ceiling = min(ceiling * config.multiplier, config.max_wait)

    def wrap(
        self, *, idempotent: bool = False
    ) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Coroutine[Any, Any, T]]]:
        """A decorator: `@retry.wrap(idempotent=True)` retries every call of the function."""

        def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
            @functools.wraps(fn)
            async def retried(*args: P.args, **kwargs: P.kwargs) -> T:
                return await self.run(lambda: fn(*args, **kwargs), idempotent=idempotent)

            return retried

        return decorate

    def _next_delay(
        self,
        attempt: int,
        ceiling: float,
        safe: bool,
        deadline: Deadline | None,
        error: BaseException | None,
        result: Any,
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to stop."""
        config = self.config
        max_attempts = config.max_attempts
        testing_attempts = max_attempts_in_testing()
        if testing_attempts is not None:
            max_attempts = min(max_attempts, testing_attempts)
        reason: GiveUpReason | None = None
        delay = 0.0
        if not safe:
            reason = "not_idempotent"
        elif attempt >= max_attempts:
            reason = "max_attempts"
        else:
            delay = self._random.uniform(0.0, ceiling)
            hint = config.retry_after(error if error is not None else result) if config.retry_after else None
            if hint is not None:
                if hint > config.max_retry_after:
                    reason = "retry_after_too_long"
                elif hint > delay:
                    delay = hint
            if is_testing():
                delay = 0.0
            if reason is None and deadline is not None and delay >= deadline.remaining():
                reason = "deadline"
            # Checked last: a retry is spent only if it will really happen.
            if reason is None and self.budget is not None and not self.budget.try_acquire():
                reason = "budget"
        if reason is not None:
            if error is not None:
                error.add_note(
                    f"retry {self.name!r} stopped after {attempt} attempt(s): {_EXPLANATIONS[reason]}"
                )
            if self._listeners:
                self._emit(RetryGaveUp(self.name, attempt, reason, error, result))
            return None
        if self._listeners:
            self._emit(RetryScheduled(self.name, attempt, delay, error, result))
        return delay

    def _emit(self, event: RetryScheduled | RetryGaveUp) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a listener's bug must not fail the call it observes
                _log.exception("retry %r: listener %r failed on %r", self.name, listener, event)
