"""Binary lookup, directory permissions for the postgres user, masking, secrets, ports."""

from __future__ import annotations

import os
import pwd
import socket
import stat
from pathlib import Path

import pytest

from bookvault.stack.binaries import postgres_bin_dir
from bookvault.stack.errors import StackError
from bookvault.stack.masking import mask_password
from bookvault.stack.ports import ensure_port_free
from bookvault.stack.runas import ensure_reachable, may_search, postgres_runner
from bookvault.stack.secrets import read_or_create


def make_tool(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)


def test_newest_debian_postgres_is_chosen_when_initdb_is_not_on_path(tmp_path: Path) -> None:
    for major in ("13", "15", "9"):
        make_tool(tmp_path / major / "bin" / "initdb")
    assert postgres_bin_dir(tmp_path, path_env="") == tmp_path / "15" / "bin"


def test_initdb_on_path_wins(tmp_path: Path) -> None:
    make_tool(tmp_path / "lib" / "15" / "bin" / "initdb")
    make_tool(tmp_path / "path" / "initdb")
    assert postgres_bin_dir(tmp_path / "lib", path_env=str(tmp_path / "path")) == tmp_path / "path"


def test_missing_initdb_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"^initdb not found: install PostgreSQL server binaries \(apt-get"):
        postgres_bin_dir(tmp_path, path_env="")


@pytest.mark.parametrize(
    ("mode", "owner", "group", "allowed"),
    [
        (0o700, 101, 0, True),  # postgres owns it
        (0o700, 0, 0, False),  # root's private directory, e.g. pytest's own tmp dirs
        (0o750, 0, 104, True),  # shared through the postgres group
        (0o751, 0, 0, True),  # others may enter
    ],
)
def test_who_may_enter_a_directory(mode: int, owner: int, group: int, allowed: bool) -> None:
    assert may_search(stat.S_IFDIR | mode, owner, group, uid=101, groups=(104,)) is allowed


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "postgresql://bookvault:s3cret@127.0.0.1:54320/postgres",
            "postgresql://bookvault:***@127.0.0.1:54320/postgres",
        ),
        ("redis://:s3cret@127.0.0.1:6380/0", "redis://:***@127.0.0.1:6380/0"),
        ("postgresql://app@db.example/catalog", "postgresql://app@db.example/catalog"),
    ],
)
def test_passwords_are_masked(url: str, masked: str) -> None:
    assert mask_password(url) == masked


def test_a_secret_is_made_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "jwt.key"
    first = read_or_create(path)
    assert read_or_create(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32


def test_port_in_use_is_one_line_naming_the_setting() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(StackError) as caught:
            ensure_port_free("127.0.0.1", port, "postgres primary", "BOOKVAULT_POSTGRES_PORT")
    assert str(caught.value) == (
        f"port {port} (postgres primary) is in use: stop what uses it or set BOOKVAULT_POSTGRES_PORT"
    )


def _has_postgres_user() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True


@pytest.mark.skipif(
    os.geteuid() != 0 or not _has_postgres_user(), reason="only root hands PostgreSQL to the postgres user"
)
def test_a_state_dir_postgres_cannot_reach_is_one_clear_line(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    state = private / "state"
    state.mkdir()
    with pytest.raises(
        StackError, match=r"^user postgres cannot enter .*/private to reach .* choose a --state-dir"
    ):
        ensure_reachable(state, postgres_runner())
