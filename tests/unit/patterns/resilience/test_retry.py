import random
from datetime import timedelta
from typing import Any

import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.patterns.resilience import (
    Deadline,
    Retry,
    RetryBudget,
    RetryConfig,
    RetryGaveUp,
    RetryScheduled,
    parse_retry_after,
    retry_after_attribute,
    set_testing,
    use_deadline,
)


class Upper(random.Random):
    """Jitter that always picks the top of the range, to make waits predictable."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Flaky:
    """A dependency that fails `failures` times, then answers."""

    def __init__(self, failures: int = 1_000_000, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error if error is not None else ConnectionError("catalog unreachable")
        self.attempts = 0

    async def __call__(self) -> str:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise self.error
        return "book"


class Unavailable(ConnectionError):
    def __init__(self, retry_after: Any) -> None:
        super().__init__("503 Service Unavailable")
        self.retry_after = retry_after


async def test_retries_until_max_attempts_then_raises_the_last_error(clock: FakeClock) -> None:
    retry = Retry("catalog", clock=clock)
    dependency = Flaky()
    with pytest.raises(ConnectionError, match="catalog unreachable") as raised:
        await retry.run(dependency, idempotent=True)
    assert dependency.attempts == 3
    assert len(clock.sleeps) == 2
    assert any("stopped after 3 attempt(s): no attempts left" in note for note in raised.value.__notes__)


async def test_stops_retrying_on_success(clock: FakeClock) -> None:
    retry = Retry("catalog", clock=clock)
    dependency = Flaky(failures=1)
    assert await retry.run(dependency, idempotent=True) == "book"
    assert dependency.attempts == 2


async def test_an_error_not_in_retry_on_is_raised_at_once(clock: FakeClock) -> None:
    retry = Retry("catalog", clock=clock)
    dependency = Flaky(error=ValueError("bad book id"))
    with pytest.raises(ValueError, match="bad book id"):
        await retry.run(dependency, idempotent=True)
    assert dependency.attempts == 1


async def test_waits_use_full_jitter_within_the_exponential_ceiling(clock: FakeClock) -> None:
    config = RetryConfig(max_attempts=7, initial_wait=1.0, multiplier=2.0, max_wait=10.0)
    retry = Retry("catalog", config, clock=clock, rng=random.Random(1234))
    with pytest.raises(ConnectionError):
        await retry.run(Flaky(), idempotent=True)

    ceilings = [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert len(clock.sleeps) == len(ceilings)
    for wait, ceiling in zip(clock.sleeps, ceilings, strict=True):
        assert 0.0 <= wait <= ceiling
    # Full jitter draws uniformly from [0, ceiling]: the same seed gives the same waits.
    expected = random.Random(1234)
    assert clock.sleeps == [expected.uniform(0.0, c) for c in ceilings]


async def test_seed_defaults_wait_up_to_one_then_two_seconds(clock: FakeClock) -> None:
    retry = Retry("catalog", clock=clock, rng=Upper())
    with pytest.raises(ConnectionError):
        await retry.run(Flaky(), idempotent=True)
    assert clock.sleeps == [1.0, 2.0]


async def test_honours_retry_after_from_the_failure(clock: FakeClock) -> None:
    retry = Retry("catalog", clock=clock, rng=Upper())
    dependency = Flaky(failures=1, error=Unavailable(retry_after=7.5))
    assert await retry.run(dependency, idempotent=True) == "book"
    assert clock.sleeps == [7.5]


async def test_a_retry_after_shorter_than_the_backoff_keeps_the_backoff(clock: FakeClock) -> None:
    retry = Retry("catalog", RetryConfig(initial_wait=3.0), clock=clock, rng=Upper())
    await retry.run(Flaky(failures=1, error=Unavailable(retry_after=0.5)), idempotent=True)
    assert clock.sleeps == [3.0]


async def test_a_retry_after_beyond_the_cap_ends_retrying(clock: FakeClock) -> None:
    events: list[RetryScheduled | RetryGaveUp] = []
    retry = Retry("catalog", RetryConfig(max_retry_after=30.0), clock=clock)
    retry.add_listener(events.append)
    dependency = Flaky(failures=1, error=Unavailable(retry_after=120))
    with pytest.raises(Unavailable):
        await retry.run(dependency, idempotent=True)
    assert dependency.attempts == 1
    assert clock.sleeps == []
    assert [e.reason for e in events if isinstance(e, RetryGaveUp)] == ["retry_after_too_long"]


async def test_retry_after_can_come_from_a_result(clock: FakeClock) -> None:
    responses = iter([(503, 4.0), (200, None)])

    async def get() -> tuple[int, float | None]:
        return next(responses)

    config = RetryConfig(retry_on_result=lambda r: r[0] == 503, retry_after=lambda r: r[1])
    retry = Retry("catalog", config, clock=clock, rng=Upper())
    assert await retry.run(get, idempotent=True) == (200, None)
    assert clock.sleeps == [4.0]


async def test_giving_up_on_results_returns_the_last_result(clock: FakeClock) -> None:
    calls = 0

    async def unavailable() -> int:
        nonlocal calls
        calls += 1
        return 503

    retry = Retry("catalog", RetryConfig(retry_on_result=lambda status: status == 503), clock=clock)
    assert await retry.run(unavailable, idempotent=True) == 503
    assert calls == 3


async def test_a_non_idempotent_operation_is_never_retried(clock: FakeClock) -> None:
    retry = Retry("payments", clock=clock)
    dependency = Flaky(failures=1)
    with pytest.raises(ConnectionError) as raised:
        await retry.run(dependency)
    assert dependency.attempts == 1
    assert any("not marked safe to repeat" in note for note in raised.value.__notes__)


async def test_an_idempotency_key_makes_an_operation_safe_to_retry(clock: FakeClock) -> None:
    retry = Retry("payments", clock=clock)
    dependency = Flaky(failures=1)
    assert await retry.run(dependency, idempotency_key="pay-7f3a") == "book"
    assert dependency.attempts == 2


async def test_never_sleeps_past_the_deadline(clock: FakeClock) -> None:
    retry = Retry("catalog", RetryConfig(max_attempts=10), clock=clock, rng=Upper())
    dependency = Flaky()
    deadline = Deadline.after(2.5, clock=clock)
    with pytest.raises(ConnectionError) as raised:
        await retry.run(dependency, idempotent=True, deadline=deadline)
    # Waits of 1 s fit; the next one (2 s) would end after the deadline, so it stops there.
    assert clock.sleeps == [1.0]
    assert dependency.attempts == 2
    assert not deadline.expired
    assert any("before the deadline" in note for note in raised.value.__notes__)


async def test_the_current_deadline_bounds_retries_too(clock: FakeClock) -> None:
    retry = Retry("catalog", RetryConfig(max_attempts=10), clock=clock, rng=Upper())
    dependency = Flaky()
    with use_deadline(Deadline.after(0.5, clock=clock)), pytest.raises(ConnectionError):
        await retry.run(dependency, idempotent=True)
    assert dependency.attempts == 1
    assert clock.sleeps == []


async def test_budget_caps_retries_under_a_dependency_that_always_fails(clock: FakeClock) -> None:
    set_testing(True)  # no backoff sleeps: the test moves time itself, 100 requests a second
    budget = RetryBudget(ratio=0.2, min_retries_per_second=3.0, window=10, clock=clock)
    retry = Retry("catalog", budget=budget, clock=clock)
    dependency = Flaky()
    requests = 1000
    for _ in range(requests):
        with pytest.raises(ConnectionError):
            await retry.run(dependency, idempotent=True)
        clock.advance(0.01)

    # Without the budget this would be 3000 attempts (3 per request).
    assert dependency.attempts <= 1.2 * requests
    assert dependency.attempts > requests  # retries did happen, within the budget
    assert budget.rejected > 0
    metrics = budget.metrics()
    assert metrics.retries <= metrics.allowed


async def test_budget_floor_keeps_a_quiet_dependency_retryable(clock: FakeClock) -> None:
    set_testing(True)
    budget = RetryBudget(clock=clock)
    retry = Retry("catalog", budget=budget, clock=clock)
    dependency = Flaky()
    with pytest.raises(ConnectionError) as raised:
        await retry.run(dependency, idempotent=True)
    # 20% of one request is 0.2 retries, but the floor (3/s over 10 s) allows both.
    assert dependency.attempts == 3
    assert not any("budget" in note for note in raised.value.__notes__)


async def test_budget_refusal_is_explained(clock: FakeClock) -> None:
    set_testing(True)
    budget = RetryBudget(ratio=0.0, min_retries_per_second=0.1, window=10, clock=clock)
    retry = Retry("catalog", budget=budget, clock=clock)
    await retry.run(Flaky(failures=1), idempotent=True)  # spends the only retry (0.1/s x 10 s)
    with pytest.raises(ConnectionError) as raised:
        await retry.run(Flaky(failures=1), idempotent=True)
    assert any("retry budget for this dependency is spent" in note for note in raised.value.__notes__)
    clock.advance(10)  # the spent retry leaves the window
    assert await retry.run(Flaky(failures=1), idempotent=True) == "book"


async def test_testing_mode_removes_waits_and_can_remove_retries(clock: FakeClock) -> None:
    retry = Retry("catalog", clock=clock)
    set_testing(True)
    dependency = Flaky()
    with pytest.raises(ConnectionError):
        await retry.run(dependency, idempotent=True)
    assert dependency.attempts == 3
    assert clock.sleeps == []

    set_testing(True, attempts=1)
    dependency = Flaky()
    with pytest.raises(ConnectionError):
        await retry.run(dependency, idempotent=True)
    assert dependency.attempts == 1


async def test_listeners_hear_each_scheduled_retry(clock: FakeClock) -> None:
    events: list[RetryScheduled | RetryGaveUp] = []
    retry = Retry("catalog", clock=clock, rng=Upper())
    retry.add_listener(events.append)
    with pytest.raises(ConnectionError):
        await retry.run(Flaky(), idempotent=True)
    assert [(type(e).__name__, e.attempts if isinstance(e, RetryGaveUp) else e.attempt) for e in events] == [
        ("RetryScheduled", 1),
        ("RetryScheduled", 2),
        ("RetryGaveUp", 3),
    ]
    scheduled = events[0]
    assert isinstance(scheduled, RetryScheduled)
    assert scheduled.delay == 1.0
    assert isinstance(scheduled.error, ConnectionError)


async def test_decorator_retries_every_call(clock: FakeClock) -> None:
    retry = Retry("catalog", clock=clock)
    attempts = 0

    @retry.wrap(idempotent=True)
    async def get_book(book_id: int) -> dict[str, int]:
        """Load a book."""
        nonlocal attempts
        attempts += 1
        if attempts < 2:
            raise ConnectionError("catalog unreachable")
        return {"id": book_id}

    assert await get_book(3) == {"id": 3}
    assert attempts == 2
    assert get_book.__name__ == "get_book"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, r"max_attempts must be an integer >= 1 \(1 means no retry\), got 0"),
        ({"initial_wait": -1}, r"initial_wait must be >= 0 seconds, got -1"),
        ({"multiplier": 0.5}, r"multiplier must be >= 1 \(waits never shrink\), got 0.5"),
        ({"max_wait": 0.5}, r"max_wait \(0.5 s\) must be >= initial_wait \(1.0 s\)"),
        ({"max_retry_after": -1}, r"max_retry_after must be >= 0 seconds"),
    ],
)
def test_config_validation_says_what_is_wrong(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ratio": -0.1}, "ratio must be >= 0"),
        ({"min_retries_per_second": -1}, "min_retries_per_second must be >= 0"),
        ({"window": 0}, "window must be a whole number of seconds >= 1"),
        ({"window": 2.5}, "window must be a whole number of seconds >= 1"),
    ],
)
def test_budget_validation_says_what_is_wrong(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryBudget(**kwargs)


def test_testing_mode_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError, match="attempts must be an integer >= 1"):
        set_testing(True, attempts=0)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (3, 3.0),
        (2.5, 2.5),
        (timedelta(seconds=90), 90.0),
        (-1, None),
        (True, None),
        ("120", None),
        (float("nan"), None),
        (None, None),
    ],
)
def test_retry_after_attribute(value: object, seconds: float | None) -> None:
    class Failure(Exception):
        retry_after = value

    assert retry_after_attribute(Failure()) == seconds


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Fri, 15 Jan 2027 08:00:30 GMT", 30.0),
        ("Fri, 15 Jan 2027 07:59:00 GMT", 0.0),  # a date in the past means "now"
        ("soon", None),
        ("-5", None),
        ("1.5", None),
    ],
)
def test_parse_retry_after_header(header: str, seconds: float | None) -> None:
    now = 1_800_000_000.0  # Fri, 15 Jan 2027 08:00:00 GMT
    assert parse_retry_after(header, now=now) == seconds
