"""Crash detection and restart timing, with real child processes and a fake clock."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.stack.backoff import RestartBackoff
from bookvault.stack.errors import StackError
from bookvault.stack.processes import ChildProcess, pid_alive
from bookvault.stack.supervisor import Component, Supervisor


def sleeper(tmp_path: Path, name: str = "sleeper") -> Component:
    process = ChildProcess(name, ["sleep", "60"], tmp_path / f"{name}.log", stop_timeout_s=2.0)
    return Component(name, "service", "-", process=process)


def state_of(component: Component) -> str:
    # A call, so the type checker does not keep an earlier assert's narrowing of the field.
    return component.state


def kill_and_wait(component: Component) -> None:
    """SIGKILL the child and wait (on the real process, not the clock) until it can be reaped."""
    assert component.process is not None
    assert component.pid is not None
    os.kill(component.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while component.process.running and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_crashed_child_is_restarted_after_the_backoff_delay(tmp_path: Path) -> None:
    clock = FakeClock()
    lines: list[str] = []
    supervisor = Supervisor(clock=clock, backoff=RestartBackoff(initial_s=0.5, max_s=8.0), emit=lines.append)
    component = supervisor.add(sleeper(tmp_path))
    first_pid = component.pid
    try:
        kill_and_wait(component)
        assert supervisor.check()
        assert state_of(component) == "restarting"
        assert "sleeper exited with status -9; restarting in 0.5s" in lines

        clock.advance(0.4)
        assert not supervisor.check()
        assert state_of(component) == "restarting"

        clock.advance(0.1)
        assert supervisor.check()
        assert state_of(component) == "running"
        assert component.restarts == 1
        assert component.pid is not None
        assert component.pid != first_pid

        # It crashes again right away: the next delay is twice as long.
        kill_and_wait(component)
        supervisor.check()
        assert component.restart_at == pytest.approx(clock.monotonic() + 1.0)
    finally:
        supervisor.stop_all()


def test_a_child_stopped_on_purpose_stays_stopped(tmp_path: Path) -> None:
    clock = FakeClock()
    supervisor = Supervisor(clock=clock)
    component = supervisor.add(sleeper(tmp_path))
    try:
        supervisor.stop("sleeper")
        clock.advance(60)
        assert not supervisor.check()
        assert state_of(component) == "stopped"
        assert component.pid is None
        supervisor.start("sleeper")
        assert state_of(component) == "running"
    finally:
        supervisor.stop_all()


def test_stop_all_stops_in_reverse_order_and_leaves_nothing(tmp_path: Path) -> None:
    lines: list[str] = []
    supervisor = Supervisor(emit=lines.append)
    first = supervisor.add(sleeper(tmp_path, "first"))
    second = supervisor.add(sleeper(tmp_path, "second"))
    pids = [first.pid, second.pid]
    supervisor.stop_all()
    assert [line for line in lines if line.startswith("stopping")] == ["stopping second", "stopping first"]
    assert not any(pid_alive(pid) for pid in pids if pid is not None)
    assert not supervisor.check()  # nothing is restarted once stopping began


def test_the_whole_process_group_is_stopped(tmp_path: Path) -> None:
    # A shell that leaves a grandchild behind, as a granian master leaves its workers.
    process = ChildProcess(
        "spawner", ["sh", "-c", "sleep 60 & echo $! > child.pid; wait"], tmp_path / "s.log"
    )
    process.cwd = tmp_path
    process.start()
    deadline = time.monotonic() + 5
    while not (tmp_path / "child.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    grandchild = int((tmp_path / "child.pid").read_text())
    process.kill()
    deadline = time.monotonic() + 5
    while pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not pid_alive(grandchild)


def test_unknown_component_names_say_which_exist(tmp_path: Path) -> None:
    supervisor = Supervisor()
    supervisor.add(Component("redis", "redis", "redis://elsewhere"))
    with pytest.raises(StackError, match="no component named 'catalog': known are redis"):
        supervisor.get("catalog")
