"""Which user runs PostgreSQL.

`initdb` and `postgres` refuse to run as root. When the stack runs as root (CI
does), PostgreSQL runs as the `postgres` system user in directories that user
owns; otherwise everything runs as the current user.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import stat
from pathlib import Path
from typing import Any

from bookvault.stack.errors import StackError

POSTGRES_SYSTEM_USER = "postgres"


@dataclasses.dataclass(frozen=True, slots=True)
class RunAs:
    """A user for child processes; `name is None` means the current user, unchanged."""

    name: str | None
    uid: int
    gid: int
    groups: tuple[int, ...]

    @classmethod
    def current(cls) -> RunAs:
        return cls(None, os.geteuid(), os.getegid(), tuple(os.getgroups()))

    @property
    def switches_user(self) -> bool:
        return self.name is not None

    @property
    def label(self) -> str:
        return self.name or pwd.getpwuid(self.uid).pw_name

    def popen_options(self) -> dict[str, Any]:
        if self.name is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}

    def own(self, path: Path) -> None:
        """Hand `path` to this user (a no-op when it is the current user)."""
        if self.switches_user:
            os.chown(path, self.uid, self.gid)


def postgres_runner() -> RunAs:
    if os.geteuid() != 0:
        return RunAs.current()
    try:
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        raise StackError(
            "PostgreSQL refuses to run as root and there is no 'postgres' user: "
            "install the server package (apt-get install postgresql) or run bookvault as a normal user"
        ) from None
    groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid, groups)


def may_search(mode: int, owner: int, group: int, uid: int, groups: tuple[int, ...]) -> bool:
    """Whether user `uid` (in `groups`) may enter a directory with these attributes."""
    if uid == 0:
        return True
    if owner == uid:
        return bool(mode & stat.S_IXUSR)
    if group in groups:
        return bool(mode & stat.S_IXGRP)
    return bool(mode & stat.S_IXOTH)


def ensure_reachable(path: Path, runner: RunAs) -> None:
    """Fail with one line when `runner` cannot reach `path` through its parent directories."""
    if not runner.switches_user:
        return
    for directory in [path, *path.parents]:
        info = directory.stat()
        if not may_search(info.st_mode, info.st_uid, info.st_gid, runner.uid, runner.groups):
            raise StackError(
                f"user {runner.label} cannot enter {directory} to reach the state directory {path}: "
                "choose a --state-dir it can reach, e.g. a new directory under /tmp or /var/tmp"
            )


def make_owned_dir(path: Path, runner: RunAs, mode: int = 0o700) -> None:
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    path.chmod(mode)
    runner.own(path)


def write_owned(path: Path, text: str, runner: RunAs, mode: int = 0o600) -> None:
    """Write a file that `runner` owns (PostgreSQL reads its own configuration)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(mode)
    runner.own(path)
