"""Finding and stopping a stack from another process (`bookvault down`, `status`, `seed`)."""

from __future__ import annotations

import signal
from collections.abc import Callable

import msgspec

from bookvault.stack.errors import StackError
from bookvault.stack.lock import SupervisorLock
from bookvault.stack.paths import StatePaths
from bookvault.stack.processes import pid_alive, stop_pid
from bookvault.stack.state import StackRecord, read_state, write_state

SUPERVISOR_STOP_TIMEOUT_S = 120.0
COMPONENT_STOP_TIMEOUT_S = 15.0


def supervisor_running(paths: StatePaths) -> bool:
    return SupervisorLock(paths.lock_file).held_elsewhere()


def _stop_signal(kind: str) -> int:
    # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to leave.
    return signal.SIGINT if kind == "postgres" else signal.SIGTERM


def stop_leftovers(record: StackRecord, emit: Callable[[str], None]) -> int:
    """Stop components a dead supervisor left running, the last started first."""
    stopped = 0
    for component in reversed(record.components):
        # Without its start time a recorded pid could name an unrelated process by now.
        if component.pid is None or component.start_ticks is None:
            continue
        if not pid_alive(component.pid, component.start_ticks):
            continue
        killed = stop_pid(
            component.pid, component.start_ticks, _stop_signal(component.kind), COMPONENT_STOP_TIMEOUT_S
        )
        emit(f"{'killed' if killed else 'stopped'} {component.name} (pid {component.pid})")
        stopped += 1
    return stopped


def stop_stack(paths: StatePaths, emit: Callable[[str], None]) -> bool:
    """Stop the supervisor (which stops its children), then anything it left; False when nothing ran."""
    record = read_state(paths)
    running = supervisor_running(paths)
    if record is None and not running:
        return False
    if record is None:
        raise StackError("the stack is still starting (no state file yet): try again in a moment")
    acted = False
    if running:
        emit(f"stopping the supervisor (pid {record.supervisor_pid})")
        stop_pid(
            record.supervisor_pid, record.supervisor_start_ticks, signal.SIGTERM, SUPERVISOR_STOP_TIMEOUT_S
        )
        acted = True
    record = read_state(paths)
    if record is not None:
        acted = stop_leftovers(record, emit) > 0 or acted
        if record.status not in ("stopped", "failed"):
            write_state(paths, _as_stopped(record))
    return acted


def _as_stopped(record: StackRecord) -> StackRecord:
    components = tuple(msgspec.structs.replace(c, state="stopped", pid=None) for c in record.components)
    return msgspec.structs.replace(record, status="stopped", components=components)
