"""One supervisor per state directory, enforced by an advisory file lock.

The kernel drops the lock when the supervisor dies however it dies, so a stale
state file can never make a stack look running.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class SupervisorLock:
    __slots__ = ("_fd", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock for this process's lifetime; False when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def held_elsewhere(self) -> bool:
        """Whether some other process holds the lock right now."""
        if self._fd is not None or not self.path.exists():
            return False
        if self.acquire():
            self.release()
            return False
        return True
