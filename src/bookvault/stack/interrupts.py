"""Ctrl-C and SIGTERM as an exception, but never in the middle of spawning a child.

The supervisor stops everything in a `finally` block when `StopRequested` is
raised. A signal that arrives while `subprocess.Popen` runs would lose the new
child's pid (and orphan it), so spawning is shielded: the stop is raised right
after the child is recorded instead.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequested(BaseException):
    """A stop signal arrived; unwinding runs the cleanup."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _StopSignals:
    __slots__ = ("_installed", "_raised", "_shielded", "_shutting_down", "requested")

    def __init__(self) -> None:
        self.requested: int | None = None
        self._raised = False
        self._shutting_down = False
        self._shielded = 0
        self._installed = False

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)
        self._installed = True

    def shutting_down(self) -> None:
        """From now on signals are only noted: the cleanup that runs must not be cut short."""
        self._shutting_down = True

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.requested is not None or self._shutting_down:
            return  # already stopping: let the cleanup finish
        self.requested = signum
        if not self._shielded:
            self._raise()

    def _raise(self) -> None:
        if self.requested is not None and not self._raised:
            self._raised = True
            raise StopRequested(self.requested)

    @contextlib.contextmanager
    def shield(self) -> Iterator[None]:
        self._shielded += 1
        try:
            yield
        finally:
            self._shielded -= 1
        if self._installed and self._shielded == 0:
            self._raise()


stop_signals = _StopSignals()
