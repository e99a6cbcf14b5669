"""A circuit breaker with Resilience4j's state machine, for asyncio.

    breaker = CircuitBreaker("catalog", BreakerConfig(slow_call_duration_threshold=2.0))

    book = await breaker.call(client.get_book, book_id)
    async with breaker:
        await client.reserve(book_id)

    @breaker
    async def get_book(book_id: int) -> Book: ...

How it behaves (see the package docstring for where it differs from Resilience4j):

- CLOSED records every outcome in a sliding window. Once the window holds
  `minimum_number_of_calls`, a failure rate or slow-call rate at or above its
  threshold opens the breaker.
- OPEN refuses calls with `CallNotPermitted` (its `retry_after` says when probing
  starts). The move to HALF_OPEN happens on the first call, or `state` read, after
  `wait_duration_in_open_state`: it is time-driven, just evaluated lazily on the
  injected clock, so no timer task exists.
- HALF_OPEN hands out `permitted_number_of_calls_in_half_open_state` permits. A
  permit is taken before the call and the call runs with no lock held; callers
  beyond the cap are refused at once. When every permitted call has finished, the
  same thresholds decide: OPEN again, or CLOSED with a fresh window. With
  `max_wait_duration_in_half_open_state` set, HALF_OPEN that lasts longer falls
  back to OPEN.
- An outcome is recorded only in the state that permitted the call: a slow call
  started while CLOSED that ends during HALF_OPEN does not vote on the probes.
- Cancellation (`asyncio.CancelledError`) and `CallRejected` raised inside count
  as neither success nor failure, like `ignore_exceptions`; an ignored HALF_OPEN
  call gives its permit back. Put timeouts *inside* the breaker (`Policy` does) so
  that they are recorded as failures.
- DISABLED and METRICS_ONLY let every call through; FORCED_OPEN refuses every
  call. Only the `transition_to_*` methods and `reset()` leave these states.

Single-threaded asyncio needs no lock: nothing between reading and updating the
state awaits. The CLOSED path reads the clock twice (start and end: the end
reading dates the window bucket too) and allocates nothing without listeners.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeAlias, TypeVar

from ..clock import Clock, SystemClock
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
from ._errors import CallNotPermitted, CallRejected
from ._filters import compile_filter
from ._windows import FAILED, SLOW, CountWindow, SlidingWindow, TimeWindow

__all__ = ["CircuitBreaker"]

P = ParamSpec("P")
T = TypeVar("T")

_log = logging.getLogger("bookvault.patterns.resilience")

# Module constants: a global lookup is cheaper than `BreakerState.CLOSED` on the hot path.
_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
_DISABLED = BreakerState.DISABLED
_FORCED_OPEN = BreakerState.FORCED_OPEN
_METRICS_ONLY = BreakerState.METRICS_ONLY

# What `async with breaker:` keeps between enter and exit: (generation, start, the
# outer entry when one task nests the same breaker).
_Entry: TypeAlias = tuple[int, float, "_Entry | None"]


class CircuitBreaker:
    __slots__ = (
        "_clock",
        "_entry",
        "_exceeded",
        "_failure_threshold",
        "_generation",
        "_is_ignored",
        "_is_recorded",
        "_listeners",
        "_min_calls",
        "_not_permitted",
        "_now",
        "_permits",
        "_publishing",
        "_record_result",
        "_since",
        "_slow_after",
        "_slow_threshold",
        "_state",
        "_window",
        "config",
        "name",
    )

    def __init__(
        self, name: str = "default", config: BreakerConfig | None = None, *, clock: Clock | None = None
    ) -> None:
        self.name = name
        self.config = config = config if config is not None else BreakerConfig()
        self._clock = clock if clock is not None else SystemClock()
        # Calling time.monotonic directly skips one Python frame per reading.
        self._now: Callable[[], float] = (
            time.monotonic if type(self._clock) is SystemClock else self._clock.monotonic
        )
        self._failure_threshold = config.failure_rate_threshold
        self._slow_threshold = config.slow_call_rate_threshold
        self._slow_after = config.slow_call_duration_threshold
        self._is_ignored = compile_filter(config.ignore_exceptions)
        self._is_recorded = compile_filter(config.record_exceptions)
        self._record_result = config.record_result
        # A tuple, replaced on change: emitting iterates it without copying, and a
        # listener that unsubscribes while being called cannot upset the loop.
        self._listeners: tuple[BreakerListener, ...] = ()
        self._entry: ContextVar[_Entry | None] = ContextVar(f"circuit_breaker_{name}", default=None)
        self._not_permitted = 0
        # Bumped on every transition; a call records its outcome only if the
        # generation that permitted it is still current.
        self._generation = 0
        self._state = _CLOSED
        self._publishing = True
        self._exceeded = False
        self._permits = 0
        self._since = self._now()
        self._min_calls = config.minimum_number_of_calls
        self._window: SlidingWindow = self._fresh_window(self._since)

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self._state.value}>"

    # -- calling through the breaker -------------------------------------------------

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(*args, **kwargs)` if the breaker permits it; raise `CallNotPermitted` if not."""
        generation = self._generation if self._state is _CLOSED else self._acquire()
        now = self._now
        start = now()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._on_exception(exc, generation, start, now())
            raise
        end = now()
        record_result = self._record_result
        if record_result is not None and record_result(result):
            self._record(generation, start, end, FAILED, None, result)
        else:
            self._record(generation, start, end, 0, None, None)
        return result

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """Use the breaker as a decorator of an async function."""

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(fn, *args, **kwargs)

        return guarded

    async def __aenter__(self) -> Self:
        generation = self._generation if self._state is _CLOSED else self._acquire()
        # The breaker is shared by concurrent tasks, so per-call data lives in the task's
        # context (each task runs in its own copy); the link to the outer entry lets one
        # task nest the same breaker.
        entry = self._entry
        entry.set((generation, self._now(), entry.get()))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        end = self._now()
        entry = self._entry
        current = entry.get()
        if current is None:
            raise RuntimeError(f"circuit breaker {self.name!r} exited in a task that did not enter it")
        generation, start, outer = current
        entry.set(outer)
        if exc is None:
            self._record(generation, start, end, 0, None, None)
        else:
            self._on_exception(exc, generation, start, end)

    # -- state ------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The current state, after any time-driven move that is due (OPEN → HALF_OPEN,
        HALF_OPEN → OPEN on its maximum wait)."""
        state = self._state
        if state is _OPEN or state is _HALF_OPEN:
            return self._advance(self._now())
        return state

    def metrics(self) -> BreakerMetrics:
        state = self.state
        window = self._window
        window.refresh(self._now())
        calls = window.calls
        ready = calls > 0 and calls >= self._min_calls
        return BreakerMetrics(
            name=self.name,
            state=state,
            failure_rate=window.failed * 100.0 / calls if ready else None,
            slow_call_rate=window.slow * 100.0 / calls if ready else None,
            buffered_calls=calls,
            failed_calls=window.failed,
            slow_calls=window.slow,
            not_permitted_calls=self._not_permitted,
        )

    def transition_to_closed(self) -> None:
        self._transition(_CLOSED, self._now(), "manual")

    def transition_to_open(self) -> None:
        self._transition(_OPEN, self._now(), "manual")

    def transition_to_half_open(self) -> None:
        self._transition(_HALF_OPEN, self._now(), "manual")

    def transition_to_disabled(self) -> None:
        self._transition(_DISABLED, self._now(), "manual")

    def transition_to_forced_open(self) -> None:
        self._transition(_FORCED_OPEN, self._now(), "manual")

    def transition_to_metrics_only(self) -> None:
        self._transition(_METRICS_ONLY, self._now(), "manual")

    def reset(self) -> None:
        """Back to CLOSED with an empty window and the refused-call counter at zero."""
        self._not_permitted = 0
        self._transition(_CLOSED, self._now(), "reset")
        if self._listeners:
            self._emit(BreakerReset(self.name))

    # -- listeners --------------------------------------------------------------------

    def add_listener(self, listener: BreakerListener) -> None:
        """Call `listener(event)` for every event. A listener that raises is logged and skipped."""
        self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: BreakerListener) -> None:
        if listener not in self._listeners:
            raise ValueError(f"{listener!r} is not a listener of circuit breaker {self.name!r}")
        listeners = list(self._listeners)
        listeners.remove(listener)
        self._listeners = tuple(listeners)

    # -- internals --------------------------------------------------------------------

    def _fresh_window(self, now: float) -> SlidingWindow:
        config = self.config
        if config.sliding_window_type == "time_based":
            return TimeWindow(config.sliding_window_size, now)
        return CountWindow(config.sliding_window_size)

    def _acquire(self) -> int:
        """Permission for one call in any state but CLOSED; returns the generation."""
        state = self._state
        if state is _DISABLED or state is _METRICS_ONLY or state is _CLOSED:
            return self._generation
        now = self._now()
        state = self._advance(now)
        if state is _HALF_OPEN:
            if self._permits > 0:
                self._permits -= 1
                return self._generation
            raise self._refuse(state, None)
        if state is _OPEN:
            raise self._refuse(state, self._since + self.config.wait_duration_in_open_state - now)
        raise self._refuse(state, None)

    def _advance(self, now: float) -> BreakerState:
        state = self._state
        if state is _OPEN:
            if now - self._since >= self.config.wait_duration_in_open_state:
                self._transition(_HALF_OPEN, now, "wait_elapsed")
                return _HALF_OPEN
        elif state is _HALF_OPEN:
            max_wait = self.config.max_wait_duration_in_half_open_state
            if max_wait is not None and now - self._since >= max_wait:
                self._transition(_OPEN, now, "max_wait_in_half_open")
                return _OPEN
        return state

    def _refuse(self, state: BreakerState, retry_after: float | None) -> CallNotPermitted:
        self._not_permitted += 1
        if self._listeners and self._publishing:
            self._emit(BreakerCallNotPermitted(self.name, state))
        return CallNotPermitted(self.name, state, retry_after=retry_after)

    def _on_exception(self, exc: BaseException, generation: int, start: float, end: float) -> None:
        if isinstance(exc, Exception) and not isinstance(exc, CallRejected) and not self._is_ignored(exc):
            # Resilience4j's rule: an exception neither recorded nor ignored is a success.
            self._record(generation, start, end, FAILED if self._is_recorded(exc) else 0, exc, None)
            return
        if self._listeners and self._publishing:
            self._emit(BreakerCallIgnored(self.name, end - start, exc))
        if generation == self._generation and self._state is _HALF_OPEN:
            # The probe said nothing about the dependency: its permit goes to the next caller.
            self._permits += 1

    def _record(
        self,
        generation: int,
        start: float,
        end: float,
        outcome: int,
        error: BaseException | None,
        result: Any,
    ) -> None:
        duration = end - start
        if duration > self._slow_after:
            outcome |= SLOW
        if self._listeners and self._publishing:
            self._emit_outcome(duration, outcome, error, result)
        if generation != self._generation or self._state is _DISABLED:
            return
        window = self._window
        window.record(outcome, end)
        # A CLOSED window with no failure and no slow call cannot reach a threshold
        # (both are > 0), so the healthy steady state skips the evaluation.
        if window.calls >= self._min_calls and (window.failed or window.slow or self._state is not _CLOSED):
            self._evaluate(window, end)

    def _evaluate(self, window: SlidingWindow, now: float) -> None:
        calls = window.calls
        # Multiplying instead of dividing keeps the common "below threshold" check cheap.
        failing = window.failed * 100.0 >= self._failure_threshold * calls
        slowing = window.slow * 100.0 >= self._slow_threshold * calls
        state = self._state
        if state is _CLOSED:
            if failing or slowing:
                self._rates_exceeded(window)
                self._transition(_OPEN, now, "failure_rate" if failing else "slow_call_rate")
        elif state is _HALF_OPEN:
            # Reached only once every permitted probe has finished (min calls = permits).
            if failing or slowing:
                self._rates_exceeded(window)
                self._transition(_OPEN, now, "failure_rate" if failing else "slow_call_rate")
            else:
                self._transition(_CLOSED, now, "probes_passed")
        elif state is _METRICS_ONLY:
            exceeded = failing or slowing
            if exceeded and not self._exceeded:
                self._rates_exceeded(window)
            self._exceeded = exceeded

    def _rates_exceeded(self, window: SlidingWindow) -> None:
        if self._listeners:
            calls = window.calls
            self._emit(
                BreakerRateExceeded(self.name, window.failed * 100.0 / calls, window.slow * 100.0 / calls)
            )

    def _transition(self, to: BreakerState, now: float, reason: TransitionReason) -> None:
        previous = self._state
        self._state = to
        self._generation += 1
        self._since = now
        self._exceeded = False
        # Resilience4j's rule: DISABLED and FORCED_OPEN publish only state changes.
        self._publishing = to is not _DISABLED and to is not _FORCED_OPEN
        if to is _HALF_OPEN:
            permitted = self.config.permitted_number_of_calls_in_half_open_state
            self._window = CountWindow(permitted)
            self._min_calls = permitted
            self._permits = permitted
        elif to is not _OPEN:
            self._window = self._fresh_window(now)
            self._min_calls = self.config.minimum_number_of_calls
        # OPEN keeps the window that opened it, so its metrics still say why.
        if self._listeners and previous is not to:
            self._emit(BreakerStateChanged(self.name, previous, to, reason))

    def _emit_outcome(self, duration: float, outcome: int, error: BaseException | None, result: Any) -> None:
        if outcome & FAILED:
            self._emit(BreakerCallFailed(self.name, duration, error, result))
        else:
            self._emit(BreakerCallSucceeded(self.name, duration))
        if outcome & SLOW:
            self._emit(BreakerSlowCall(self.name, duration, failed=bool(outcome & FAILED)))

    def _emit(self, event: BreakerEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a listener's bug must not fail the call it observes
                _log.exception("circuit breaker %r: listener %r failed on %r", self.name, listener, event)
