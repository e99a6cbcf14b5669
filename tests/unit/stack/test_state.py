from __future__ import annotations

import os
from pathlib import Path

import pytest

from bookvault.stack.errors import StackError
from bookvault.stack.paths import StatePaths
from bookvault.stack.state import read_state, snapshot, write_state
from bookvault.stack.supervisor import Component, Supervisor


def test_the_state_file_round_trips(tmp_path: Path) -> None:
    paths = StatePaths.at(tmp_path)
    supervisor = Supervisor()
    supervisor.add(Component("redis", "redis", "redis://:***@cache.internal:6379/0"))
    record = snapshot(supervisor, "running", "optimized", paths)
    write_state(paths, record)
    assert read_state(paths) == record
    assert record.supervisor_pid == os.getpid()
    assert record.components[0].state == "external"
    assert "***" in paths.state_file.read_text()


def test_no_state_file_means_no_stack(tmp_path: Path) -> None:
    assert read_state(StatePaths.at(tmp_path)) is None


def test_a_damaged_state_file_is_one_clear_line(tmp_path: Path) -> None:
    paths = StatePaths.at(tmp_path)
    paths.state_file.write_text("{not json")
    with pytest.raises(
        StackError, match=r"state.json is damaged .*: remove it after making sure nothing runs"
    ):
        read_state(paths)
