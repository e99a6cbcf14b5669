"""A local PostgreSQL primary and its streaming replica.

The primary is made once with `initdb`; the replica once with
`pg_basebackup -R -X stream` from the running primary. Both run as children of
the supervisor (`postgres -D …`, never `pg_ctl`), so it sees them exit and stops
them itself: SIGINT is PostgreSQL's fast shutdown.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from bookvault.stack.errors import StackError
from bookvault.stack.processes import ChildProcess, log_tail
from bookvault.stack.runas import RunAs, make_owned_dir, write_owned

SUPERUSER = "bookvault"
READY_TIMEOUT_S = 60.0
# Our settings live in their own file, rewritten at every start so a changed port applies.
CONFIG_FILE = "bookvault.conf"
_INCLUDE_LINE = f"include_if_exists = '{CONFIG_FILE}'\n"
_HBA = """\
# Written by bookvault: loopback only, passwords (SCRAM) for everyone, replication from 127.0.0.1.
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  scram-sha-256
host    all          all   127.0.0.1/32   scram-sha-256
host    replication  all   127.0.0.1/32   scram-sha-256
"""


@dataclasses.dataclass(frozen=True, slots=True)
class PostgresNode:
    """One PostgreSQL server of the stack."""

    role: str  # "primary" or "replica"
    data_dir: Path
    port: int
    socket_dir: Path

    @property
    def label(self) -> str:
        return f"postgres {self.role}"


def dsn(password: str, port: int, host: str = "127.0.0.1", database: str = "postgres") -> str:
    return f"postgresql://{SUPERUSER}:{password}@{host}:{port}/{database}"


def is_initialised(data_dir: Path) -> bool:
    return (data_dir / "PG_VERSION").is_file()


def _run(
    argv: list[str], what: str, log_path: Path, runner: RunAs, env: dict[str, str] | None = None
) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        completed = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
            **runner.popen_options(),
        )
    if completed.returncode != 0:
        raise StackError(f"{what} failed (exit {completed.returncode}, see {log_path}): {log_tail(log_path)}")


def init_primary(bin_dir: Path, node: PostgresNode, password: str, runner: RunAs, log_path: Path) -> bool:
    """`initdb` the primary unless it exists; True when it was created."""
    if is_initialised(node.data_dir):
        return False
    if node.data_dir.exists():
        # A directory without PG_VERSION is a failed earlier attempt; initdb wants it empty.
        shutil.rmtree(node.data_dir)
    parent = node.data_dir.parent
    password_file = parent / ".initdb-password"
    write_owned(password_file, password + "\n", runner)
    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(node.data_dir),
                "--username",
                SUPERUSER,
                f"--pwfile={password_file}",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
            ],
            "initdb",
            log_path,
            runner,
        )
    finally:
        password_file.unlink(missing_ok=True)
    write_owned(node.data_dir / "pg_hba.conf", _HBA, runner)
    return True


def make_replica(
    bin_dir: Path, primary: PostgresNode, replica: PostgresNode, password: str, runner: RunAs, log_path: Path
) -> bool:
    """Clone the running primary into the replica's directory; True when it was made."""
    if is_initialised(replica.data_dir) and (replica.data_dir / "standby.signal").is_file():
        return False
    if replica.data_dir.exists():
        shutil.rmtree(replica.data_dir)
    env = {**os.environ, "PGPASSWORD": password}
    _run(
        [
            str(bin_dir / "pg_basebackup"),
            "--pgdata",
            str(replica.data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(primary.port),
            "--username",
            SUPERUSER,
            "--no-password",
            "--write-recovery-conf",
            "--wal-method=stream",
            "--checkpoint=fast",
        ],
        "pg_basebackup (making the replica)",
        log_path,
        runner,
        env=env,
    )
    # `-R` wrote the connection it used into postgresql.auto.conf, which would override
    # ours; the replica's connection to the primary lives in our config file instead.
    auto_conf = replica.data_dir / "postgresql.auto.conf"
    kept = [
        line
        for line in auto_conf.read_text().splitlines(keepends=True)
        if not line.startswith("primary_conninfo")
    ]
    write_owned(auto_conf, "".join(kept), runner)
    return True


def replication_conninfo(primary: PostgresNode, password: str) -> str:
    # Rewritten at every start, so the replica follows a primary whose port changed.
    return (
        f"host=127.0.0.1 port={primary.port} user={SUPERUSER} password={password} "
        "application_name=bookvault-replica"
    )


def node_config(node: PostgresNode, primary_conninfo: str | None = None) -> str:
    """The settings we own; `shared_buffers` stays modest for a laptop or a 2-core CI box."""
    lines = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(node.port),
        "unix_socket_directories": f"'{node.socket_dir}'",
        "wal_level": "replica",
        "max_wal_senders": "10",
        # Keeps enough WAL for a replica that was stopped for a while to catch up without a slot.
        "wal_keep_size": "'256MB'",
        "hot_standby": "on",
        "hot_standby_feedback": "on",
        "shared_preload_libraries": "'pg_stat_statements'",
        "shared_buffers": "'128MB'",
        "max_connections": "200",
        "logging_collector": "off",
    }
    if primary_conninfo is not None:
        lines["primary_conninfo"] = f"'{primary_conninfo}'"
    return "# Written by bookvault at every start.\n" + "".join(f"{k} = {v}\n" for k, v in lines.items())


def configure(node: PostgresNode, runner: RunAs, primary_conninfo: str | None = None) -> None:
    make_owned_dir(node.socket_dir, runner)
    write_owned(node.data_dir / CONFIG_FILE, node_config(node, primary_conninfo), runner)
    if primary_conninfo is not None:
        # `pg_basebackup -R` wrote the connection it used into postgresql.auto.conf, which
        # would override ours; the replica's connection lives in our file instead.
        auto_conf = node.data_dir / "postgresql.auto.conf"
        lines = auto_conf.read_text().splitlines(keepends=True) if auto_conf.exists() else []
        kept = [line for line in lines if not line.startswith("primary_conninfo")]
        if kept != lines:
            write_owned(auto_conf, "".join(kept), runner)
    conf = node.data_dir / "postgresql.conf"
    if _INCLUDE_LINE not in conf.read_text():
        with conf.open("a") as handle:
            handle.write("\n" + _INCLUDE_LINE)


def server_process(bin_dir: Path, node: PostgresNode, runner: RunAs, log_path: Path) -> ChildProcess:
    return ChildProcess(
        node.label,
        [str(bin_dir / "postgres"), "-D", str(node.data_dir)],
        log_path,
        runner=runner,
        stop_signal=signal.SIGINT,  # fast shutdown: roll back open transactions, then stop
        stop_timeout_s=30.0,
    )


def wait_ready(
    bin_dir: Path, node: PostgresNode, process: ChildProcess, timeout_s: float = READY_TIMEOUT_S
) -> None:
    """Wait until the server accepts connections; one clear line when it does not."""
    deadline = time.monotonic() + timeout_s
    probe = [str(bin_dir / "pg_isready"), "--host", "127.0.0.1", "--port", str(node.port), "--timeout", "1"]
    while True:
        code = process.returncode
        if code is not None:
            raise StackError(
                f"{node.label} exited with status {code} while starting "
                f"(see {process.log_path}): {process.last_log_line()}"
            )
        result = subprocess.run(probe, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise StackError(
                f"{node.label} did not accept connections within {timeout_s:.0f}s "
                f"(see {process.log_path}): {process.last_log_line()}"
            )
        time.sleep(0.1)
