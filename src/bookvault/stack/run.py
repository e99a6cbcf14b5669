"""`bookvault up` in the foreground: start everything, supervise it, stop it on a signal.

Order: state directory and lock, leftovers of a killed supervisor, ports,
PostgreSQL and Redis, migrations, services, gateway, workers. A signal (Ctrl-C,
SIGTERM from `bookvault down`) stops everything in reverse order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bookvault.config import Settings
from bookvault.stack.control import stop_leftovers
from bookvault.stack.errors import StackError
from bookvault.stack.infra import check_ports, prepare, start_infrastructure
from bookvault.stack.interrupts import StopRequested, stop_signals
from bookvault.stack.lock import SupervisorLock
from bookvault.stack.migrate import migrate
from bookvault.stack.paths import StatePaths
from bookvault.stack.services import START_ORDER, start_services
from bookvault.stack.state import (
    StackRecord,
    Status,
    forget_environment,
    read_state,
    snapshot,
    write_environment,
    write_state,
)
from bookvault.stack.supervisor import Supervisor
from bookvault.stack.workers import WorkerPool

TICK_S = 0.25


class AlreadyRunningError(StackError):
    """Another supervisor owns this state directory."""


class _Recorder:
    """Keeps `state.json` in step with the supervisor."""

    def __init__(self, supervisor: Supervisor, paths: StatePaths, profile: str) -> None:
        self.supervisor = supervisor
        self.paths = paths
        self.profile = profile
        self.status: Status = "starting"
        self.reason: str | None = None

    def save(self, status: Status | None = None, reason: str | None = None) -> StackRecord:
        if status is not None:
            self.status = status
        if reason is not None:
            self.reason = reason
        record = snapshot(self.supervisor, self.status, self.profile, self.paths, self.reason)
        write_state(self.paths, record)
        return record


def run_foreground(
    settings: Settings,
    emit: Callable[[str], None],
    on_ready: Callable[[StackRecord, Settings], None],
) -> None:
    """Run the stack until a stop signal; raise `StackError` when it cannot start."""
    settings, paths = prepare(settings)
    lock = SupervisorLock(paths.lock_file)
    if not lock.acquire():
        raise AlreadyRunningError(f"BookVault is already running in {paths.root}")
    try:
        _supervise(settings, paths, emit, on_ready)
    finally:
        lock.release()


def _supervise(
    settings: Settings,
    paths: StatePaths,
    emit: Callable[[str], None],
    on_ready: Callable[[StackRecord, Settings], None],
) -> None:
    previous = read_state(paths)
    if previous is not None and stop_leftovers(previous, emit):
        emit("stopped processes a previous supervisor left running")
    supervisor = Supervisor(emit=emit)
    recorder = _Recorder(supervisor, paths, settings.profile)

    def changed() -> None:
        recorder.save()

    supervisor.on_change = changed
    recorder.save("starting")
    stop_signals.install()
    failure: str | None = None
    try:
        check_ports(settings, START_ORDER)
        resolved = start_infrastructure(settings, paths, supervisor, emit)
        write_environment(paths, resolved)
        asyncio.run(migrate(resolved, emit))
        start_services(resolved, paths, supervisor)
        workers = WorkerPool(resolved, paths, supervisor, emit=emit)
        workers.start()
        on_ready(recorder.save("running"), resolved)
        while True:
            supervisor.check()
            workers.tick()
            time.sleep(TICK_S)
    except StopRequested as stop:
        emit(f"{stop}: stopping")
    except StackError as exc:
        failure = str(exc)
        raise
    except Exception as exc:
        failure = f"unexpected error: {exc!r}"
        raise
    finally:
        stop_signals.shutting_down()
        recorder.save("stopping")
        supervisor.stop_all()
        forget_environment(paths)
        recorder.save("failed" if failure else "stopped", failure)
        if supervisor.components:
            emit("stopped")
