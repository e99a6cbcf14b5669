import asyncio
import logging
from typing import Any

import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.patterns.resilience import (
    BreakerCallFailed,
    BreakerCallIgnored,
    BreakerCallNotPermitted,
    BreakerCallSucceeded,
    BreakerConfig,
    BreakerEvent,
    BreakerRateExceeded,
    BreakerReset,
    BreakerSlowCall,
    BreakerState,
    BreakerStateChanged,
    BulkheadFull,
    CallNotPermitted,
    CircuitBreaker,
)


async def fail() -> None:
    raise ConnectionError("catalog unreachable")


async def succeed() -> str:
    return "ok"


async def trip(breaker: CircuitBreaker, failures: int = 5) -> None:
    for _ in range(failures):
        with pytest.raises(ConnectionError):
            await breaker.call(fail)


class Gate:
    """A dependency call that stays in flight until the test lets it finish."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0
        self.peak = 0

    async def __call__(self, outcome: str = "ok") -> str:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        if outcome == "fail":
            raise ConnectionError("catalog unreachable")
        return outcome


async def test_half_open_permits_exactly_n_concurrent_calls_without_a_lock(clock: FakeClock) -> None:
    breaker = CircuitBreaker("catalog", clock=clock)
    await trip(breaker)
    clock.advance(10)
    gate = Gate()

    probes = [asyncio.create_task(breaker.call(gate)) for _ in range(3)]
    await asyncio.sleep(0)
    # All three probes are in flight at once: the permit is a counter, not a held lock.
    assert gate.running == 3

    # The fourth caller is refused at once, while the probes are still running.
    with pytest.raises(CallNotPermitted) as refused:
        await breaker.call(gate)
    assert refused.value.state is BreakerState.HALF_OPEN
    assert breaker.state is BreakerState.HALF_OPEN

    gate.release.set()
    assert await asyncio.gather(*probes) == ["ok"] * 3
    assert breaker.metrics().state is BreakerState.CLOSED
    assert gate.peak == 3


async def test_half_open_decides_only_after_every_probe_finished(clock: FakeClock) -> None:
    breaker = CircuitBreaker("catalog", clock=clock)
    await trip(breaker)
    clock.advance(10)
    slow_probe = Gate()
    pending = asyncio.create_task(breaker.call(slow_probe, "fail"))
    await asyncio.sleep(0)
    await breaker.call(succeed)
    await breaker.call(succeed)
    assert breaker.state is BreakerState.HALF_OPEN

    slow_probe.release.set()
    with pytest.raises(ConnectionError):
        await pending
    # 1 failure in 3 probes is 33% < 50%.
    assert breaker.metrics().state is BreakerState.CLOSED


async def test_a_cancelled_probe_gives_its_permit_back(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "catalog", BreakerConfig(permitted_number_of_calls_in_half_open_state=1), clock=clock
    )
    await trip(breaker)
    clock.advance(10)
    gate = Gate()
    probe = asyncio.create_task(breaker.call(gate))
    await asyncio.sleep(0)
    with pytest.raises(CallNotPermitted):
        await breaker.call(succeed)

    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    # The cancellation said nothing about the dependency, so another caller may probe.
    assert await breaker.call(succeed) == "ok"
    assert breaker.state is BreakerState.CLOSED


async def test_a_call_started_in_closed_does_not_vote_in_half_open(clock: FakeClock) -> None:
    breaker = CircuitBreaker("catalog", clock=clock)
    straggler = Gate()
    late = asyncio.create_task(breaker.call(straggler, "fail"))
    await asyncio.sleep(0)
    await trip(breaker)
    clock.advance(10)
    assert breaker.state is BreakerState.HALF_OPEN

    straggler.release.set()
    with pytest.raises(ConnectionError):
        await late
    metrics = breaker.metrics()
    assert metrics.state is BreakerState.HALF_OPEN
    assert metrics.buffered_calls == 0
    # All three permits are still there for real probes.
    for _ in range(3):
        await breaker.call(succeed)
    assert breaker.metrics().state is BreakerState.CLOSED


async def test_open_breaker_says_when_probing_starts(clock: FakeClock) -> None:
    breaker = CircuitBreaker("catalog", clock=clock)
    await trip(breaker)
    clock.advance(4)
    with pytest.raises(CallNotPermitted) as refused:
        await breaker.call(succeed)
    assert refused.value.retry_after == pytest.approx(6.0)
    assert refused.value.name == "catalog"
    assert "catalog" in str(refused.value)
    assert "open" in str(refused.value)


async def test_async_with_records_outcomes(clock: FakeClock) -> None:
    breaker = CircuitBreaker("catalog", clock=clock)
    for _ in range(5):
        with pytest.raises(ConnectionError):
            async with breaker:
                raise ConnectionError("catalog unreachable")
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CallNotPermitted):
        async with breaker:
            pytest.fail("an open breaker must not run the block")


async def test_async_with_times_each_concurrent_task_separately(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "catalog", BreakerConfig(slow_call_duration_threshold=1.0, minimum_number_of_calls=1), clock=clock
    )
    events: list[BreakerEvent] = []
    breaker.add_listener(events.append)
    started = asyncio.Event()
    finish_first = asyncio.Event()

    async def first() -> None:
        async with breaker:
            started.set()
            await finish_first.wait()

    async def second() -> None:
        await started.wait()
        clock.advance(5)  # the first call is now 5 s old; this one starts here
        async with breaker:
            pass
        finish_first.set()

    await asyncio.gather(first(), second())
    durations = sorted(e.duration for e in events if isinstance(e, BreakerCallSucceeded))
    assert durations == [0.0, 5.0]


async def test_the_same_task_may_nest_the_same_breaker(clock: FakeClock) -> None:
    breaker = CircuitBreaker("catalog", clock=clock)
    async with breaker:
        async with breaker:
            pass
        with pytest.raises(ConnectionError):
            async with breaker:
                raise ConnectionError("inner")
    assert breaker.metrics().buffered_calls == 3
    assert breaker.metrics().failed_calls == 1


async def test_decorator_keeps_the_function_and_its_arguments(clock: FakeClock) -> None:
    breaker = CircuitBreaker("catalog", clock=clock)

    @breaker
    async def get_book(book_id: int, *, fields: str = "all") -> dict[str, Any]:
        """Load a book."""
        return {"id": book_id, "fields": fields}

    assert await get_book(7, fields="title") == {"id": 7, "fields": "title"}
    assert get_book.__name__ == "get_book"
    assert get_book.__doc__ == "Load a book."
    assert breaker.metrics().buffered_calls == 1


async def test_events_describe_each_call_and_transition(clock: FakeClock) -> None:
    config = BreakerConfig(slow_call_duration_threshold=1.0, ignore_exceptions=(LookupError,))
    breaker = CircuitBreaker("catalog", config, clock=clock)
    events: list[BreakerEvent] = []
    breaker.add_listener(events.append)

    async def slow() -> str:
        await clock.sleep(2.0)
        return "late"

    async def missing() -> None:
        raise LookupError("no such book")

    await breaker.call(slow)
    with pytest.raises(LookupError):
        await breaker.call(missing)
    await trip(breaker, 4)
    with pytest.raises(CallNotPermitted):
        await breaker.call(succeed)
    breaker.reset()

    kinds = [type(e) for e in events]
    assert kinds == [
        BreakerCallSucceeded,
        BreakerSlowCall,
        BreakerCallIgnored,
        BreakerCallFailed,
        BreakerCallFailed,
        BreakerCallFailed,
        BreakerCallFailed,
        BreakerRateExceeded,
        BreakerStateChanged,
        BreakerCallNotPermitted,
        BreakerStateChanged,
        BreakerReset,
    ]
    assert events[0] == BreakerCallSucceeded("catalog", 2.0)
    assert events[1] == BreakerSlowCall("catalog", 2.0, failed=False)
    assert isinstance(events[3], BreakerCallFailed)
    assert isinstance(events[3].error, ConnectionError)
    assert events[7] == BreakerRateExceeded("catalog", failure_rate=80.0, slow_call_rate=20.0)
    assert events[8] == BreakerStateChanged("catalog", BreakerState.CLOSED, BreakerState.OPEN, "failure_rate")
    assert events[9] == BreakerCallNotPermitted("catalog", BreakerState.OPEN)


async def test_a_failure_by_result_carries_the_result(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "catalog", BreakerConfig(record_result=lambda status: status >= 500), clock=clock
    )
    events: list[BreakerEvent] = []
    breaker.add_listener(events.append)

    async def unavailable() -> int:
        return 503

    # The caller still gets the result: the breaker only counts it.
    assert await breaker.call(unavailable) == 503
    assert events == [BreakerCallFailed("catalog", 0.0, error=None, result=503)]


async def test_disabled_and_forced_open_publish_only_state_changes(clock: FakeClock) -> None:
    breaker = CircuitBreaker("catalog", clock=clock)
    events: list[BreakerEvent] = []
    breaker.add_listener(events.append)
    breaker.transition_to_disabled()
    await breaker.call(succeed)
    breaker.transition_to_forced_open()
    with pytest.raises(CallNotPermitted):
        await breaker.call(succeed)
    assert [type(e) for e in events] == [BreakerStateChanged, BreakerStateChanged]
    assert breaker.metrics().not_permitted_calls == 1


async def test_metrics_only_reports_a_crossing_once(clock: FakeClock) -> None:
    breaker = CircuitBreaker("catalog", clock=clock)
    breaker.transition_to_metrics_only()
    exceeded: list[BreakerEvent] = []
    breaker.add_listener(lambda e: exceeded.append(e) if isinstance(e, BreakerRateExceeded) else None)
    await trip(breaker, 8)
    assert len(exceeded) == 1
    for _ in range(10):
        await breaker.call(succeed)  # the rate falls under the threshold again...
    await trip(breaker, 6)  # ...and crosses it a second time
    assert len(exceeded) == 2
    assert breaker.state is BreakerState.METRICS_ONLY


async def test_a_failing_listener_is_logged_and_does_not_break_the_call(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = CircuitBreaker("catalog", clock=clock)
    received: list[BreakerEvent] = []

    def broken(event: BreakerEvent) -> None:
        raise RuntimeError("metrics backend down")

    breaker.add_listener(broken)
    breaker.add_listener(received.append)
    with caplog.at_level(logging.ERROR, logger="bookvault.patterns.resilience"):
        assert await breaker.call(succeed) == "ok"
    assert len(received) == 1
    assert "listener" in caplog.text

    breaker.remove_listener(broken)
    await breaker.call(succeed)
    assert len(received) == 2
    with pytest.raises(ValueError, match="not a listener"):
        breaker.remove_listener(broken)


async def test_local_rejections_from_inner_layers_are_ignored(clock: FakeClock) -> None:
    breaker = CircuitBreaker("catalog", clock=clock)

    async def saturated() -> None:
        raise BulkheadFull("catalog", max_concurrent_calls=20, waited=0.0)

    for _ in range(10):
        with pytest.raises(BulkheadFull):
            await breaker.call(saturated)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.metrics().buffered_calls == 0


async def test_metrics_snapshot(clock: FakeClock) -> None:
    breaker = CircuitBreaker("catalog", BreakerConfig(slow_call_duration_threshold=1.0), clock=clock)

    async def slow() -> None:
        await clock.sleep(1.5)

    assert breaker.metrics().failure_rate is None
    await breaker.call(slow)
    await trip(breaker, 2)
    await breaker.call(succeed)
    await breaker.call(succeed)
    metrics = breaker.metrics()
    assert metrics.name == "catalog"
    assert metrics.state is BreakerState.CLOSED
    assert metrics.buffered_calls == 5
    assert metrics.failed_calls == 2
    assert metrics.slow_calls == 1
    assert metrics.failure_rate == 40.0
    assert metrics.slow_call_rate == 20.0
    assert metrics.not_permitted_calls == 0
    assert repr(breaker) == "<CircuitBreaker 'catalog' closed>"


async def test_time_window_metrics_age_without_new_calls(clock: FakeClock) -> None:
    config = BreakerConfig(sliding_window_type="time_based", sliding_window_size=5, minimum_number_of_calls=1)
    breaker = CircuitBreaker("catalog", config, clock=clock)
    await breaker.call(succeed)
    clock.advance(2)
    with pytest.raises(ConnectionError):
        await breaker.call(fail)
    # 1 failure in 2 calls (50%) opened it; OPEN keeps the window, which still holds both.
    assert breaker.metrics().buffered_calls == 2
    clock.advance(4)
    assert breaker.metrics().buffered_calls == 1
    clock.advance(1)
    assert breaker.metrics().buffered_calls == 0


def test_the_defaults_are_the_seed_values() -> None:
    config = BreakerConfig()
    assert config.sliding_window_type == "count_based"
    assert config.sliding_window_size == 10
    assert config.minimum_number_of_calls == 5
    assert config.permitted_number_of_calls_in_half_open_state == 3
    assert config.wait_duration_in_open_state == 10.0
    assert config.failure_rate_threshold == 50.0
    assert config.slow_call_rate_threshold == 100.0
    assert config.slow_call_duration_threshold == 60.0
    assert config.max_wait_duration_in_half_open_state is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_rate_threshold": 0}, r"failure_rate_threshold must be a percentage in \(0, 100\], got 0"),
        (
            {"failure_rate_threshold": 101},
            r"failure_rate_threshold must be a percentage in \(0, 100\], got 101",
        ),
        ({"slow_call_rate_threshold": -5}, r"slow_call_rate_threshold must be a percentage"),
        ({"slow_call_duration_threshold": 0}, r"slow_call_duration_threshold must be > 0 seconds, got 0"),
        ({"sliding_window_type": "sliding"}, r"sliding_window_type must be 'count_based' or 'time_based'"),
        ({"sliding_window_size": 0}, r"sliding_window_size must be an integer >= 1, got 0"),
        ({"minimum_number_of_calls": 0}, r"minimum_number_of_calls must be an integer >= 1, got 0"),
        (
            {"permitted_number_of_calls_in_half_open_state": 0},
            r"permitted_number_of_calls_in_half_open_state must be an integer >= 1",
        ),
        (
            {"minimum_number_of_calls": 20},
            r"minimum_number_of_calls \(20\) exceeds sliding_window_size \(10\) of a count_based window",
        ),
        ({"wait_duration_in_open_state": -1}, r"wait_duration_in_open_state must be >= 0 seconds, got -1"),
        ({"max_wait_duration_in_half_open_state": 0}, r"max_wait_duration_in_half_open_state must be > 0"),
    ],
)
def test_config_validation_says_what_is_wrong(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BreakerConfig(**kwargs)


def test_a_time_window_may_need_more_calls_than_it_has_seconds() -> None:
    config = BreakerConfig(
        sliding_window_type="time_based", sliding_window_size=5, minimum_number_of_calls=100
    )
    assert config.minimum_number_of_calls == 100


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"record_exceptions": (ConnectionError, "TimeoutError")},
            "record_exceptions must hold exception classes",
        ),
        ({"ignore_exceptions": int}, "ignore_exceptions must be exception classes or a predicate"),
        ({"ignore_exceptions": 3}, "ignore_exceptions must be exception classes or a predicate"),
        ({"record_result": 503}, "record_result must be a predicate or None"),
    ],
)
def test_filters_must_be_classes_or_predicates(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        BreakerConfig(**kwargs)


async def test_filters_accept_a_class_a_tuple_or_a_predicate(clock: FakeClock) -> None:
    async def raise_(exc: Exception) -> None:
        raise exc

    by_class = CircuitBreaker("a", BreakerConfig(ignore_exceptions=LookupError), clock=clock)
    by_predicate = CircuitBreaker(
        "b", BreakerConfig(ignore_exceptions=lambda exc: "404" in str(exc)), clock=clock
    )
    for breaker, ignored, recorded in [
        (by_class, KeyError("k"), ConnectionError("down")),
        (by_predicate, ConnectionError("404 not found"), ConnectionError("502 bad gateway")),
    ]:
        for exc in (ignored, recorded):
            with pytest.raises(type(exc)):
                await breaker.call(raise_, exc)
        assert breaker.metrics().buffered_calls == 1
        assert breaker.metrics().failed_calls == 1
