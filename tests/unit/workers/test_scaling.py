"""How many worker processes run for a given lag: up at once, down one at a time
after a quiet spell, always within bounds."""

from __future__ import annotations

import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.workers import Autoscaler, wanted_workers


@pytest.mark.parametrize(
    ("lag", "wanted"),
    [(0, 1), (1, 1), (1000, 1), (1001, 2), (2500, 3), (10**9, 4), (-5, 1)],
)
def test_one_worker_per_thousand_events_behind_within_bounds(lag: int, wanted: int) -> None:
    assert wanted_workers(lag, minimum=1, maximum=4, lag_per_worker=1000) == wanted


@pytest.mark.parametrize(("minimum", "maximum", "per"), [(0, 4, 10), (3, 2, 10), (1, 4, 0)])
def test_impossible_bounds_are_refused(minimum: int, maximum: int, per: int) -> None:
    with pytest.raises(ValueError, match="must"):
        wanted_workers(0, minimum=minimum, maximum=maximum, lag_per_worker=per)


def test_scales_up_at_once_and_down_one_step_per_quiet_cooldown() -> None:
    clock = FakeClock()
    scaler = Autoscaler(clock, minimum=1, maximum=4, lag_per_worker=100, cooldown_s=30)
    assert scaler.decide(0, running=1) == 1
    assert scaler.decide(350, running=1) == 4
    # The burst drains: nothing stops before the lag has stayed low for the cooldown.
    assert scaler.decide(0, running=4) == 4
    clock.advance(29)
    assert scaler.decide(0, running=4) == 4
    clock.advance(1)
    assert scaler.decide(0, running=4) == 3
    assert scaler.decide(0, running=3) == 3  # a fresh cooldown before the next step
    clock.advance(30)
    assert scaler.decide(0, running=3) == 2
    # Lag coming back resets the quiet spell.
    assert scaler.decide(150, running=2) == 2
    clock.advance(30)
    assert scaler.decide(0, running=2) == 2
    clock.advance(30)
    assert scaler.decide(0, running=2) == 1
    clock.advance(300)
    assert scaler.decide(0, running=1) == 1  # never below the minimum


def test_an_unknown_lag_keeps_what_runs() -> None:
    scaler = Autoscaler(FakeClock(), minimum=2, maximum=4, lag_per_worker=100)
    assert scaler.decide(None, running=3) == 3
    assert scaler.decide(None, running=0) == 2  # a crash is restarted, not a scale-down
