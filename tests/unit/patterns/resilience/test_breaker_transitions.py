"""The breaker's state machine, one table row per transition (Resilience4j semantics).

A row is a script of calls and clock moves, run against a breaker on a FakeClock:

    ok          a fast successful call           fail      a call raising ConnectionError
    slow        a success taking 3 s (> 2 s)     slowfail  a failure taking 3 s
    ignored     a call raising LookupError (configured as ignored)
    other       a call raising ValueError (neither recorded nor ignored)
    bad         a call returning 503 (a failure by `record_result`)
    rejected    a call that must be refused with CallNotPermitted, without running
    wait:S      the clock moves S seconds
    to:STATE    an explicit transition (closed, open, half_open, disabled, forced_open,
                metrics_only) or `to:reset`
"""

import contextlib
from dataclasses import dataclass

import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.patterns.resilience import (
    BreakerConfig,
    BreakerState,
    BreakerStateChanged,
    CallNotPermitted,
    CircuitBreaker,
)

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN
DISABLED = BreakerState.DISABLED
FORCED_OPEN = BreakerState.FORCED_OPEN
METRICS_ONLY = BreakerState.METRICS_ONLY

# Defaults are the seed's (window 10, minimum 5, 3 probes, 10 s open, 50%), plus a slow
# threshold low enough for the script's 3-second calls.
BASE = BreakerConfig(
    slow_call_duration_threshold=2.0,
    ignore_exceptions=(LookupError,),
    record_exceptions=(ConnectionError,),
    record_result=lambda result: result >= 500,
)
SLOW_50 = BreakerConfig(
    slow_call_duration_threshold=2.0, slow_call_rate_threshold=50.0, record_exceptions=(ConnectionError,)
)
TIME_WINDOW = BreakerConfig(
    sliding_window_type="time_based", sliding_window_size=10, minimum_number_of_calls=5
)
HALF_OPEN_MAX_WAIT = BreakerConfig(max_wait_duration_in_half_open_state=5.0)
WINDOW_4 = BreakerConfig(sliding_window_size=4, minimum_number_of_calls=4)


def times(n: int, step: str) -> tuple[str, ...]:
    return (step,) * n


@dataclass(frozen=True)
class Row:
    id: str
    steps: tuple[str, ...]
    state: BreakerState
    config: BreakerConfig = BASE
    invoked: int | None = None  # calls that reached the dependency
    buffered: int | None = None
    failure_rate: float | str | None = "unchecked"
    not_permitted: int | None = None
    transitions: tuple[tuple[BreakerState, BreakerState, str], ...] | None = None


TRIPPED = (*times(5, "fail"),)

ROWS = [
    # -- CLOSED -> OPEN ------------------------------------------------------------------
    Row(
        "closed->open: failure rate reaches 50% at the minimum number of calls",
        ("fail", "fail", "fail", "ok", "ok"),
        OPEN,
        failure_rate=60.0,
        transitions=((CLOSED, OPEN, "failure_rate"),),
    ),
    Row(
        "closed->open: exactly the threshold opens (>=)",
        ("fail", "fail", "ok", "ok"),
        OPEN,
        config=WINDOW_4,
        failure_rate=50.0,
    ),
    Row(
        "closed stays closed below the minimum number of calls, even at 100% failures",
        times(4, "fail"),
        CLOSED,
        buffered=4,
        failure_rate=None,
        transitions=(),
    ),
    Row(
        "closed stays closed under the threshold",
        ("fail", "fail", "ok", "ok", "ok"),
        CLOSED,
        failure_rate=40.0,
    ),
    Row(
        "closed->open: the count window slides (an old success leaves, a failure enters)",
        (*times(10, "ok"), *times(4, "fail"), "fail"),
        OPEN,
        buffered=10,
        failure_rate=50.0,
    ),
    Row(
        "closed->open: slow-call rate reaches its threshold",
        ("slow", "slow", "slow", "ok", "ok"),
        OPEN,
        config=SLOW_50,
        failure_rate=0.0,
        transitions=((CLOSED, OPEN, "slow_call_rate"),),
    ),
    Row(
        "closed stays closed when slow calls stay under the slow-call threshold (default 100%)",
        ("slow", "slow", "slow", "ok", "ok"),
        CLOSED,
    ),
    Row(
        "closed->open: record_result turns 503 results into failures",
        times(5, "bad"),
        OPEN,
        failure_rate=100.0,
    ),
    Row(
        "ignored exceptions count as neither success nor failure",
        times(10, "ignored"),
        CLOSED,
        invoked=10,
        buffered=0,
    ),
    Row(
        "an exception neither recorded nor ignored counts as a success",
        times(5, "other"),
        CLOSED,
        buffered=5,
        failure_rate=0.0,
    ),
    Row(
        "time window: buckets older than the window are evicted",
        (*times(4, "fail"), "wait:10", "fail"),
        CLOSED,
        config=TIME_WINDOW,
        buffered=1,
        failure_rate=None,
    ),
    Row(
        "time window: failures within the window add up and open it",
        (*times(4, "fail"), "wait:9", "fail"),
        OPEN,
        config=TIME_WINDOW,
        failure_rate=100.0,
    ),
    # -- OPEN ------------------------------------------------------------------------------
    Row(
        "open rejects without calling the dependency",
        (*TRIPPED, *times(3, "rejected")),
        OPEN,
        invoked=5,
        not_permitted=3,
    ),
    Row(
        "open stays open until the wait has fully passed",
        (*TRIPPED, "wait:9.9", "rejected"),
        OPEN,
        not_permitted=1,
    ),
    Row(
        "open->half_open after wait_duration_in_open_state",
        (*TRIPPED, "wait:10"),
        HALF_OPEN,
        transitions=((CLOSED, OPEN, "failure_rate"), (OPEN, HALF_OPEN, "wait_elapsed")),
    ),
    # -- HALF_OPEN ---------------------------------------------------------------------------
    Row(
        "half_open->closed when the permitted probes succeed",
        (*TRIPPED, "wait:10", "ok", "ok", "ok"),
        CLOSED,
        buffered=0,
        transitions=(
            (CLOSED, OPEN, "failure_rate"),
            (OPEN, HALF_OPEN, "wait_elapsed"),
            (HALF_OPEN, CLOSED, "probes_passed"),
        ),
    ),
    Row(
        "half_open->closed when probe failures stay under the threshold",
        (*TRIPPED, "wait:10", "fail", "ok", "ok"),
        CLOSED,
    ),
    Row(
        "half_open->open when probe failures reach the threshold",
        (*TRIPPED, "wait:10", "fail", "fail", "ok"),
        OPEN,
        failure_rate=200 / 3,
        transitions=(
            (CLOSED, OPEN, "failure_rate"),
            (OPEN, HALF_OPEN, "wait_elapsed"),
            (HALF_OPEN, OPEN, "failure_rate"),
        ),
    ),
    Row(
        "half_open->open when probes are slow",
        (*times(5, "slowfail"), "wait:10", "slow", "slow", "ok"),
        OPEN,
        config=SLOW_50,
    ),
    Row(
        "half_open waits for every permitted probe before deciding",
        (*TRIPPED, "wait:10", "ok", "ok"),
        HALF_OPEN,
    ),
    Row(
        "half_open->open after max_wait_duration_in_half_open_state",
        (*TRIPPED, "wait:10", "ok", "wait:5"),
        OPEN,
        config=HALF_OPEN_MAX_WAIT,
        transitions=(
            (CLOSED, OPEN, "failure_rate"),
            (OPEN, HALF_OPEN, "wait_elapsed"),
            (HALF_OPEN, OPEN, "max_wait_in_half_open"),
        ),
    ),
    Row(
        "half_open: an ignored probe gives its permit back",
        (*TRIPPED, "wait:10", *times(5, "ignored"), "ok", "ok", "ok"),
        CLOSED,
        invoked=13,
        not_permitted=0,
    ),
    Row(
        "half_open->open again waits a full wait_duration before probing",
        (*TRIPPED, "wait:10", "fail", "fail", "fail", "wait:9", "rejected", "wait:1", "ok"),
        HALF_OPEN,
        not_permitted=1,
    ),
    # -- special states ------------------------------------------------------------------------
    Row(
        "disabled lets every call through and records nothing",
        ("to:disabled", *times(20, "fail")),
        DISABLED,
        invoked=20,
        buffered=0,
        transitions=((CLOSED, DISABLED, "manual"),),
    ),
    Row(
        "forced_open rejects every call and never half-opens",
        ("to:forced_open", "rejected", "wait:60", "rejected"),
        FORCED_OPEN,
        invoked=0,
        not_permitted=2,
    ),
    Row(
        "metrics_only measures but never opens",
        ("to:metrics_only", *times(10, "fail")),
        METRICS_ONLY,
        invoked=10,
        failure_rate=100.0,
        transitions=((CLOSED, METRICS_ONLY, "manual"),),
    ),
    Row(
        "transition_to_closed leaves forced_open with a fresh window",
        ("to:forced_open", "to:closed", "ok"),
        CLOSED,
        buffered=1,
    ),
    Row(
        "transition_to_open opens a healthy breaker",
        ("ok", "to:open", "rejected"),
        OPEN,
    ),
    Row(
        "transition_to_half_open starts probing at once",
        ("to:half_open", "ok", "ok", "ok"),
        CLOSED,
    ),
    Row(
        "reset returns to closed with empty metrics",
        (*TRIPPED, "rejected", "to:reset", "ok"),
        CLOSED,
        buffered=1,
        not_permitted=0,
        transitions=((CLOSED, OPEN, "failure_rate"), (OPEN, CLOSED, "reset")),
    ),
]


class Dependency:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.invoked = 0

    async def __call__(self, step: str) -> int:
        self.invoked += 1
        if step in ("slow", "slowfail"):
            await self.clock.sleep(3.0)
        if step in ("fail", "slowfail"):
            raise ConnectionError("catalog unreachable")
        if step == "ignored":
            raise LookupError("no such book")
        if step == "other":
            raise ValueError("not a failure of the dependency")
        return 503 if step == "bad" else 200


async def run_script(breaker: CircuitBreaker, dependency: Dependency, steps: tuple[str, ...]) -> None:
    for step in steps:
        if step.startswith("wait:"):
            dependency.clock.advance(float(step.removeprefix("wait:")))
        elif step == "to:reset":
            breaker.reset()
        elif step.startswith("to:"):
            getattr(breaker, f"transition_to_{step.removeprefix('to:')}")()
        elif step == "rejected":
            before = dependency.invoked
            with pytest.raises(CallNotPermitted):
                await breaker.call(dependency, "ok")
            assert dependency.invoked == before, "a refused call must not reach the dependency"
        else:
            with contextlib.suppress(ConnectionError, LookupError, ValueError):
                await breaker.call(dependency, step)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
async def test_transition(row: Row, clock: FakeClock) -> None:
    breaker = CircuitBreaker("catalog", row.config, clock=clock)
    seen: list[tuple[BreakerState, BreakerState, str]] = []
    breaker.add_listener(
        lambda e: (
            seen.append((e.from_state, e.to_state, e.reason)) if isinstance(e, BreakerStateChanged) else None
        )
    )
    dependency = Dependency(clock)

    await run_script(breaker, dependency, row.steps)

    assert breaker.state is row.state
    metrics = breaker.metrics()
    if row.invoked is not None:
        assert dependency.invoked == row.invoked
    if row.buffered is not None:
        assert metrics.buffered_calls == row.buffered
    if row.failure_rate is None:
        assert metrics.failure_rate is None
    elif row.failure_rate != "unchecked":
        assert metrics.failure_rate == pytest.approx(row.failure_rate)
    if row.not_permitted is not None:
        assert metrics.not_permitted_calls == row.not_permitted
    if row.transitions is not None:
        assert seen == list(row.transitions)
