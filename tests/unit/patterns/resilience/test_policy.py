import asyncio

import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.patterns.resilience import (
    BreakerConfig,
    BreakerState,
    Bulkhead,
    BulkheadConfig,
    BulkheadFull,
    CallNotPermitted,
    CallRejected,
    CircuitBreaker,
    Deadline,
    DeadlineExceeded,
    Policy,
    Retry,
    RetryConfig,
    current_deadline,
    fallback,
)


class Down:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        raise ConnectionError("catalog unreachable")


async def test_an_opening_breaker_stops_the_remaining_retries(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "catalog", BreakerConfig(sliding_window_size=2, minimum_number_of_calls=2), clock=clock
    )
    policy = Policy(retry=Retry("catalog", RetryConfig(max_attempts=5), clock=clock), breaker=breaker)
    dependency = Down()
    with pytest.raises(CallNotPermitted):
        await policy.run(dependency, idempotent=True)
    # Two failures opened the breaker; attempt three was refused without reaching the dependency.
    assert dependency.calls == 2
    assert breaker.state is BreakerState.OPEN


async def test_fallback_answers_with_the_final_error(clock: FakeClock) -> None:
    breaker = CircuitBreaker("catalog", clock=clock)
    breaker.transition_to_forced_open()
    policy = Policy(retry=Retry("catalog", clock=clock), breaker=breaker)
    seen: list[Exception] = []

    async def unavailable_book(exc: Exception) -> str:
        seen.append(exc)
        return "book (from cache)"

    assert await policy.run(Down(), idempotent=True, fallback=unavailable_book) == "book (from cache)"
    assert len(seen) == 1
    assert isinstance(seen[0], CallRejected)


async def test_a_full_bulkhead_never_opens_the_breaker(clock: FakeClock) -> None:
    breaker = CircuitBreaker("catalog", clock=clock)
    bulkhead = Bulkhead("catalog", BulkheadConfig(max_concurrent_calls=1), clock=clock)
    policy = Policy(breaker=breaker, bulkhead=bulkhead)
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "book"

    in_flight = asyncio.create_task(policy.run(slow))
    await asyncio.sleep(0)
    for _ in range(20):
        with pytest.raises(BulkheadFull):
            await policy.run(slow)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.metrics().buffered_calls == 0
    assert bulkhead.rejected == 20
    release.set()
    assert await in_flight == "book"


async def test_an_attempt_timeout_is_a_recorded_failure_and_is_retried(clock: FakeClock) -> None:
    breaker = CircuitBreaker("catalog", clock=clock)
    bulkhead = Bulkhead("catalog", clock=clock)
    policy = Policy(
        retry=Retry("catalog", RetryConfig(max_attempts=2, initial_wait=0.0), clock=clock),
        breaker=breaker,
        bulkhead=bulkhead,
        attempt_timeout=1e-6,  # one microsecond: the loop's timer fires on its next turn
        clock=clock,
    )
    attempts = 0

    async def hangs() -> str:
        nonlocal attempts
        attempts += 1
        await asyncio.Event().wait()
        return "never"

    with pytest.raises(DeadlineExceeded):
        await policy.run(hangs, idempotent=True)
    assert attempts == 2
    assert breaker.metrics().failed_calls == 2
    assert bulkhead.in_flight == 0  # the cancelled attempts gave their slots back


async def test_the_deadline_reaches_every_attempt(clock: FakeClock) -> None:
    policy = Policy(retry=Retry("catalog", clock=clock), clock=clock)
    deadline = Deadline.after(3.0, clock=clock)
    seen: list[Deadline | None] = []

    async def record() -> str:
        seen.append(current_deadline())
        return "book"

    assert await policy.run(record, deadline=deadline) == "book"
    assert seen == [deadline]
    assert current_deadline() is None


async def test_a_spent_deadline_is_refused_before_any_layer(clock: FakeClock) -> None:
    breaker = CircuitBreaker("catalog", clock=clock)
    policy = Policy(breaker=breaker, clock=clock)
    dependency = Down()
    deadline = Deadline.after(1.0, clock=clock)
    clock.advance(2.0)
    with pytest.raises(DeadlineExceeded):
        await policy.run(dependency, deadline=deadline)
    assert dependency.calls == 0
    assert breaker.metrics().buffered_calls == 0


async def test_a_policy_without_layers_passes_calls_through() -> None:
    async def get() -> int:
        return 42

    policy = Policy()
    assert await policy.run(get) == 42
    assert repr(policy) == "<Policy pass-through>"


async def test_wrap_runs_every_call_through_the_policy(clock: FakeClock) -> None:
    breaker = CircuitBreaker("catalog", clock=clock)
    policy = Policy(retry=Retry("catalog", clock=clock), breaker=breaker)
    attempts = 0

    async def stale(exc: Exception) -> dict[str, int]:
        return {"id": -1}

    @policy.wrap(idempotent=True, fallback=stale)
    async def get_book(book_id: int) -> dict[str, int]:
        nonlocal attempts
        attempts += 1
        raise ConnectionError("catalog unreachable")

    assert await get_book(4) == {"id": -1}
    assert attempts == 3
    assert breaker.metrics().failed_calls == 3


def test_attempt_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempt_timeout must be > 0 seconds or None, got 0"):
        Policy(attempt_timeout=0)


async def test_fallback_helper_handles_only_matching_errors() -> None:
    async def lookup_fails() -> str:
        raise LookupError("no such book")

    async def default(exc: Exception) -> str:
        return f"default after {type(exc).__name__}"

    assert await fallback(lookup_fails, default) == "default after LookupError"
    assert await fallback(lookup_fails, default, on=(LookupError,)) == "default after LookupError"
    with pytest.raises(LookupError):
        await fallback(lookup_fails, default, on=ConnectionError)


async def test_fallback_does_not_swallow_cancellation() -> None:
    started = asyncio.Event()

    async def waits() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    async def default(exc: Exception) -> str:
        return "fallback"

    task = asyncio.create_task(fallback(waits, default))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
