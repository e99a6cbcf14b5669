"""Child processes of the stack.

Each child starts in its own session (and so its own process group): a Ctrl-C
in the terminal reaches only the supervisor, which then stops the children in
order, and stopping a child can signal its whole group, so nothing it spawned
(granian workers, PostgreSQL backends) is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from bookvault.stack.interrupts import stop_signals
from bookvault.stack.runas import RunAs

DEFAULT_STOP_TIMEOUT_S = 15.0


def process_start_ticks(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot), to tell it from a later process reusing the pid."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it are plain.
    fields = text[text.rfind(")") + 2 :].split()
    if fields and fields[0] == "Z":
        return None
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def pid_alive(pid: int, start_ticks: int | None = None) -> bool:
    """Whether `pid` runs and, when `start_ticks` is given, is the same process we started."""
    if pid <= 0 or not _pid_exists(pid):
        return False
    current = process_start_ticks(pid)
    if Path("/proc").is_dir():
        if current is None:
            return False  # exited, a zombie waiting to be reaped
        if start_ticks is not None and current != start_ticks:
            return False
    return True


def signal_group(pid: int, sig: int) -> None:
    """Signal the process group led by `pid`; a group that is gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _sweep_group(pid: int) -> None:
    # Linux never reuses a pid while a process group of that id exists, so when no
    # process has the pid, a group with its id can only hold our leader's leftovers.
    if not _pid_exists(pid):
        signal_group(pid, signal.SIGKILL)


def stop_pid(pid: int, start_ticks: int | None, sig: int, timeout_s: float) -> bool:
    """Stop a process this process did not spawn (e.g. from `bookvault down`): `sig`,
    then SIGKILL to its group after `timeout_s`. True when it had to be killed."""
    if not pid_alive(pid, start_ticks):
        _sweep_group(pid)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid, start_ticks):
            _sweep_group(pid)
            return False
        time.sleep(0.05)
    signal_group(pid, signal.SIGKILL)
    return True


def log_tail(path: Path, max_bytes: int = 4096) -> str:
    """The last non-empty line of a log, for one-line error messages."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            chunk = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in chunk.splitlines() if line.strip()]
    return lines[-1] if lines else ""


class ChildProcess:
    """One program the stack runs, logging to its own file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        runner: RunAs | None = None,
        stop_signal: int = signal.SIGTERM,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.runner = runner or RunAs.current()
        self.stop_signal = stop_signal
        self.stop_timeout_s = stop_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self.start_ticks: int | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    def start(self) -> None:
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log, stop_signals.shield():
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} starting {self.name}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                close_fds=True,
                **self.runner.popen_options(),
            )
            self.start_ticks = process_start_ticks(self._process.pid)

    def stop(self, timeout_s: float | None = None) -> None:
        """Ask the child to stop, wait, then kill its whole group."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(self.stop_signal)
            try:
                process.wait(self.stop_timeout_s if timeout_s is None else timeout_s)
            except subprocess.TimeoutExpired:
                signal_group(process.pid, signal.SIGKILL)
                process.wait()
        # Whatever the child spawned and left behind goes with it.
        signal_group(process.pid, signal.SIGKILL)

    def kill(self) -> None:
        process = self._process
        if process is None:
            return
        signal_group(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()

    def reap(self) -> int | None:
        """The exit status when the child has exited; its leftover group is killed."""
        if self._process is None:
            return None
        code = self._process.poll()
        if code is not None:
            signal_group(self._process.pid, signal.SIGKILL)
        return code

    def last_log_line(self) -> str:
        return log_tail(self.log_path)
