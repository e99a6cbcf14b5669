"""The supervisor's worker pool on real (idle) processes: it starts the minimum,
adds processes when the lag grows, stops them one by one when it drains, and
keeps a crashed worker rather than treating the crash as a scale-down."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bookvault.config import load_settings
from bookvault.patterns.clock import FakeClock
from bookvault.stack.paths import StatePaths
from bookvault.stack.processes import ChildProcess
from bookvault.stack.supervisor import Component, Supervisor
from bookvault.stack.workers import SCALE_DOWN_COOLDOWN_S, SCALE_INTERVAL_S, WorkerPool


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    supervisor = Supervisor()
    try:
        yield supervisor
    finally:
        supervisor.stop_all()


def _pool(supervisor: Supervisor, tmp_path: Path, clock: FakeClock, lag: list[int | None]) -> WorkerPool:
    settings = load_settings({}, workers_min=1, workers_max=3, workers_lag_per_worker=100)

    def idle_worker(index: int) -> Component:
        name = f"worker-{index}"
        process = ChildProcess(
            name, [sys.executable, "-c", "import time; time.sleep(120)"], tmp_path / f"{name}.log"
        )
        return Component(name, "worker", "test", process=process)

    return WorkerPool(
        settings, StatePaths.at(tmp_path), supervisor, clock=clock, lag=lambda: lag[0], make=idle_worker
    )


def _states(supervisor: Supervisor) -> dict[str, str]:
    return {c.name: c.state for c in supervisor.components}


def test_workers_follow_the_lag_between_min_and_max(supervisor: Supervisor, tmp_path: Path) -> None:
    clock = FakeClock()
    lag: list[int | None] = [0]
    pool = _pool(supervisor, tmp_path, clock, lag)
    pool.start()
    assert _states(supervisor) == {"worker-1": "running"}

    lag[0] = 250
    assert pool.tick() == 3
    assert _states(supervisor) == dict.fromkeys(["worker-1", "worker-2", "worker-3"], "running")

    lag[0] = 0
    clock.advance(SCALE_INTERVAL_S)
    assert pool.tick() == 3  # not before the lag has stayed low for the cooldown
    clock.advance(SCALE_DOWN_COOLDOWN_S)
    assert pool.tick() == 2
    assert _states(supervisor)["worker-3"] == "stopped"
    clock.advance(SCALE_DOWN_COOLDOWN_S)
    assert pool.tick() == 1
    clock.advance(SCALE_DOWN_COOLDOWN_S)
    assert pool.tick() == 1
    assert _states(supervisor) == {"worker-1": "running", "worker-2": "stopped", "worker-3": "stopped"}

    # A stopped worker is started again when the lag returns.
    lag[0] = 150
    clock.advance(SCALE_INTERVAL_S)
    assert pool.tick() == 2
    assert _states(supervisor)["worker-2"] == "running"


def test_the_lag_is_read_only_once_per_interval(supervisor: Supervisor, tmp_path: Path) -> None:
    clock = FakeClock()
    lag: list[int | None] = [0]
    pool = _pool(supervisor, tmp_path, clock, lag)
    pool.start()
    pool.tick()
    lag[0] = 300
    assert pool.tick() == 1  # the next reading is not due yet
    clock.advance(SCALE_INTERVAL_S)
    assert pool.tick() == 3


def test_a_crashed_worker_is_restarted_not_replaced(supervisor: Supervisor, tmp_path: Path) -> None:
    clock = FakeClock()
    lag: list[int | None] = [None]  # Redis unreachable: keep what runs
    pool = _pool(supervisor, tmp_path, clock, lag)
    pool.start()
    process = supervisor.get("worker-1").process
    assert process is not None
    process.kill()
    supervisor.check()
    assert _states(supervisor) == {"worker-1": "restarting"}
    assert pool.tick() == 1
    assert supervisor.names() == ["worker-1"]
