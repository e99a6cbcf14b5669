"""Keeps the stack's processes running and stops them in order.

Components are started in dependency order (PostgreSQL, Redis, services, the
gateway) and stopped in reverse. A component that exits on its own is
restarted after a backoff delay; one stopped on purpose stays stopped.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Literal

from bookvault.patterns.clock import Clock, SystemClock
from bookvault.stack.backoff import RestartBackoff
from bookvault.stack.errors import StackError
from bookvault.stack.processes import ChildProcess

Kind = Literal["postgres", "redis", "service", "worker"]
State = Literal["starting", "running", "restarting", "stopped", "external"]


@dataclasses.dataclass(slots=True, eq=False)
class Component:
    name: str
    kind: Kind
    # What a user is shown: a URL, or a DSN with its password masked.
    address: str
    process: ChildProcess | None = None  # None: infrastructure we use but did not start
    wait_ready: Callable[[ChildProcess], None] | None = None
    state: State = "starting"
    restarts: int = 0
    crashes: int = 0
    started_at: float = 0.0
    restart_at: float | None = None
    last_exit: int | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.running else None


class Supervisor:
    def __init__(
        self,
        clock: Clock | None = None,
        backoff: RestartBackoff | None = None,
        emit: Callable[[str], None] = lambda _line: None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.components: list[Component] = []
        self._clock = clock or SystemClock()
        self._backoff = backoff or RestartBackoff()
        self._emit = emit
        # Called whenever a pid or a state changes, e.g. to rewrite the state file.
        self.on_change = on_change
        self._stopping = False
        # `check` may run on a watcher thread while a test stops or starts a service.
        self._lock = threading.RLock()

    def get(self, name: str) -> Component:
        for component in self.components:
            if component.name == name:
                return component
        raise StackError(f"no component named {name!r}: known are {', '.join(self.names())}")

    def names(self) -> list[str]:
        return [component.name for component in self.components]

    def add(self, component: Component, start: bool = True) -> Component:
        """Record a component and (unless external) start it and wait until it is ready."""
        if any(existing.name == component.name for existing in self.components):
            raise StackError(f"component {component.name!r} added twice")
        self.components.append(component)
        if component.process is None:
            component.state = "external"
        elif start:
            self.start(component.name)
        return component

    def start(self, name: str) -> None:
        """Start one component and wait until it is ready."""
        self.start_many((name,))

    def start_many(self, names: tuple[str, ...]) -> None:
        """Spawn the components together, then wait for each to be ready."""
        with self._lock:
            waiting: list[tuple[Component, ChildProcess]] = []
            for name in names:
                component = self.get(name)
                process = component.process
                if process is None or process.running:
                    continue
                component.state = "starting"
                # Recorded before it is spawned, so a stop during start-up still stops it.
                try:
                    process.start()
                finally:
                    self.on_change()
                component.started_at = self._clock.monotonic()
                waiting.append((component, process))
            for component, process in waiting:
                if component.wait_ready is not None:
                    component.wait_ready(process)
                component.state = "running"
                self._emit(f"{component.name} running (pid {process.pid})")
            self.on_change()

    def stop(self, name: str) -> None:
        """Stop one component on purpose; it stays stopped until `start`."""
        with self._lock:
            component = self.get(name)
            component.state = "stopped"
            component.restart_at = None
            if component.process is not None and component.process.pid is not None:
                component.process.stop()
                self._emit(f"{name} stopped")
            self.on_change()

    def stop_all(self) -> None:
        """Stop everything, the last started first."""
        self._stopping = True
        with self._lock:
            for component in reversed(self.components):
                if component.process is not None and component.process.pid is not None:
                    if component.process.running:
                        self._emit(f"stopping {component.name}")
                    component.process.stop()
                if component.state != "external":
                    component.state = "stopped"
                self.on_change()

    def check(self) -> bool:
        """Notice crashes and restart what is due; True when any state changed."""
        with self._lock:
            changed = self._check()
            if changed:
                self.on_change()
            return changed

    def _check(self) -> bool:
        if self._stopping:
            return False
        now = self._clock.monotonic()
        changed = False
        for component in self.components:
            process = component.process
            if process is None:
                continue
            if component.state in ("starting", "running"):
                code = process.reap()
                if code is None:
                    continue
                component.last_exit = code
                component.crashes = self._backoff.crashes_after(component.crashes, now - component.started_at)
                delay = self._backoff.delay(component.crashes)
                component.state = "restarting"
                component.restart_at = now + delay
                self._emit(f"{component.name} exited with status {code}; restarting in {delay:.1f}s")
                changed = True
            elif component.state == "restarting" and component.restart_at is not None:
                if now < component.restart_at:
                    continue
                changed = True
                self._restart(component, process, now)
        return changed

    def _restart(self, component: Component, process: ChildProcess, now: float) -> None:
        try:
            process.start()
        except OSError as exc:
            component.crashes += 1
            delay = self._backoff.delay(component.crashes)
            component.restart_at = now + delay
            self._emit(f"{component.name} could not be restarted ({exc}); retrying in {delay:.1f}s")
            return
        component.state = "running"
        component.restart_at = None
        component.started_at = now
        component.restarts += 1
        self._emit(f"{component.name} restarted (pid {process.pid}, restart {component.restarts})")
