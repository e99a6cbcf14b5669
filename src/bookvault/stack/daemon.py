"""`bookvault up --detach`: the same foreground supervisor, started in the background.

The supervisor is re-executed in its own session with its output in
`logs/supervisor.log`; this process waits until the state file says the stack
is running (or the supervisor exits, and then says why) and returns.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from bookvault.stack.errors import StackError
from bookvault.stack.paths import StatePaths
from bookvault.stack.processes import log_tail
from bookvault.stack.state import StackRecord, read_state

START_TIMEOUT_S = 300.0
POLL_S = 0.1


def launch(up_arguments: Sequence[str], paths: StatePaths, timeout_s: float = START_TIMEOUT_S) -> StackRecord:
    """Start `bookvault up <up_arguments>` detached; return the running stack's record."""
    paths.logs.mkdir(parents=True, exist_ok=True)
    log_path = paths.log("supervisor")
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bookvault.cli", "up", *up_arguments],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            code = process.poll()
            record = read_state(paths)
            if record is not None and record.supervisor_pid == process.pid and record.status == "running":
                return record
            if code is not None:
                if record is not None and record.supervisor_pid == process.pid and record.reason:
                    raise StackError(record.reason)
                raise StackError(
                    f"the supervisor exited with status {code} (see {log_path}): {log_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise StackError(f"the stack did not start within {timeout_s:.0f}s (see {log_path})")
            time.sleep(POLL_S)
    except BaseException:
        # Interrupted or failed while waiting: the half-started stack must not outlive us.
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            process.wait()
        raise
