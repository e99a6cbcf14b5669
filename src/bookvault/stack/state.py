"""The state file: how `status`, `down`, `seed` and `token` find a running stack.

`state.json` holds pids, addresses (passwords masked) and the supervisor's
status; it is rewritten whenever a component starts, stops or restarts. The
resolved settings, secrets included, go to `secrets/environment.json` (0600).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Literal

import msgspec

from bookvault.config import Settings
from bookvault.stack.errors import StackError
from bookvault.stack.paths import StatePaths
from bookvault.stack.processes import process_start_ticks
from bookvault.stack.secrets import write_private
from bookvault.stack.supervisor import Supervisor

Status = Literal["starting", "running", "stopping", "stopped", "failed"]


class ComponentRecord(msgspec.Struct, frozen=True):
    name: str
    kind: str
    address: str
    state: str
    pid: int | None = None
    start_ticks: int | None = None
    restarts: int = 0


class StackRecord(msgspec.Struct, frozen=True):
    status: Status
    supervisor_pid: int
    profile: str
    state_dir: str
    updated_at: float
    components: tuple[ComponentRecord, ...] = ()
    supervisor_start_ticks: int | None = None
    reason: str | None = None


def snapshot(
    supervisor: Supervisor, status: Status, profile: str, paths: StatePaths, reason: str | None = None
) -> StackRecord:
    components = tuple(
        ComponentRecord(
            name=component.name,
            kind=component.kind,
            address=component.address,
            state=component.state,
            pid=component.pid,
            start_ticks=component.process.start_ticks
            if component.pid is not None and component.process
            else None,
            restarts=component.restarts,
        )
        for component in supervisor.components
    )
    pid = os.getpid()
    return StackRecord(
        status=status,
        supervisor_pid=pid,
        supervisor_start_ticks=process_start_ticks(pid),
        profile=profile,
        state_dir=str(paths.root),
        updated_at=time.time(),
        components=components,
        reason=reason,
    )


def write_state(paths: StatePaths, record: StackRecord) -> None:
    _write_atomic(paths.state_file, msgspec.json.format(msgspec.json.encode(record)) + b"\n")


def read_state(paths: StatePaths) -> StackRecord | None:
    try:
        raw = paths.state_file.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return msgspec.json.decode(raw, type=StackRecord)
    except msgspec.DecodeError as exc:
        raise StackError(
            f"{paths.state_file} is damaged ({exc}): remove it after making sure nothing runs"
        ) from None


def write_environment(paths: StatePaths, settings: Settings) -> None:
    write_private(paths.environment_file, msgspec.json.encode(settings.as_environment()).decode() + "\n")


def read_environment(paths: StatePaths) -> dict[str, str] | None:
    try:
        raw = paths.environment_file.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return msgspec.json.decode(raw, type=dict[str, str])
    except msgspec.DecodeError as exc:
        raise StackError(
            f"{paths.environment_file} is damaged ({exc}): restart with `bookvault up`"
        ) from None


def forget_environment(paths: StatePaths) -> None:
    paths.environment_file.unlink(missing_ok=True)


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
