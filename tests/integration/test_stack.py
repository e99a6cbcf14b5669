"""The local stack against real processes: replication, Redis policy, and the CLI's
promises (status keys, restart on crash, idempotent up, clean down, one-line errors).

The CLI tests run their own stack on 57xxx ports so they never touch the session's."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from bookvault.config import Settings
from bookvault.stack.ports import free_port_block

pytestmark = pytest.mark.stack

CLI_PORTS = {
    "BOOKVAULT_POSTGRES_PORT": 57432,
    "BOOKVAULT_REPLICA_PORT": 57433,
    "BOOKVAULT_REDIS_PORT": 57379,
    "BOOKVAULT_GATEWAY_PORT": 57080,
    "BOOKVAULT_CATALOG_PORT": 57081,
    "BOOKVAULT_BORROWING_PORT": 57082,
    "BOOKVAULT_ACCOUNTS_PORT": 57083,
}


# --- the session's infrastructure ---------------------------------------------------------


async def test_primary_streams_to_the_replica(infra: Settings) -> None:
    assert infra.database_url is not None
    marker = uuid.uuid4().hex
    primary = await asyncpg.connect(infra.database_url)
    try:
        states = [row["state"] for row in await primary.fetch("SELECT state FROM pg_stat_replication")]
        assert states == ["streaming"]
        await primary.execute("CREATE TABLE IF NOT EXISTS stack_probe (marker text PRIMARY KEY)")
        await primary.execute("INSERT INTO stack_probe (marker) VALUES ($1)", marker)
    finally:
        await primary.close()

    replica = await asyncpg.connect(infra.replica_urls[0])
    try:
        assert await replica.fetchval("SELECT pg_is_in_recovery()")
        seen = None
        for _ in range(100):
            try:
                seen = await replica.fetchval("SELECT marker FROM stack_probe WHERE marker = $1", marker)
            except asyncpg.UndefinedTableError:
                seen = None  # the CREATE TABLE has not been replayed yet
            if seen:
                break
            await asyncio.sleep(0.05)
        assert seen == marker
    finally:
        await replica.close()


async def test_every_service_has_its_database(infra: Settings) -> None:
    assert infra.database_url is not None
    conn = await asyncpg.connect(infra.database_url)
    try:
        names = {row["datname"] for row in await conn.fetch("SELECT datname FROM pg_database")}
    finally:
        await conn.close()
    assert {"catalog", "borrowing", "accounts"} <= names


async def test_redis_is_a_256mb_lru_cache_that_needs_a_password(infra: Settings) -> None:
    assert infra.redis_url is not None
    client = aioredis.Redis.from_url(infra.redis_url)
    try:
        info = await client.info("memory")
    finally:
        await client.aclose()
    assert info["maxmemory_policy"] == "allkeys-lru"
    assert int(info["maxmemory"]) == 256 * 1024 * 1024
    anonymous = aioredis.Redis(host="127.0.0.1", port=infra.redis_port)
    try:
        with pytest.raises(Exception, match=r"(?i)auth"):
            await anonymous.ping()
    finally:
        await anonymous.aclose()


# --- the CLI, on a stack of its own ---------------------------------------------------------


def bookvault(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bookvault", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_environment(ports: dict[str, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKVAULT_")}
    return {**env, **{name: str(port) for name, port in ports.items()}, "BOOKVAULT_CONFIG": os.devnull}


def reachable_dir() -> Path:
    # Not pytest's tmp_path (private to its user): as root, PostgreSQL runs as `postgres`
    # and must reach the state directory.
    path = Path(tempfile.mkdtemp(prefix="bookvault-cli-"))
    path.chmod(0o755)
    return path


@pytest.fixture
def scratch() -> Iterator[Path]:
    path = reachable_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


class CliStack:
    def __init__(self, state_dir: Path, ports: dict[str, int]) -> None:
        self.state_dir = state_dir
        self.ports = ports
        self.env = cli_environment(ports)

    def url(self, setting: str) -> str:
        return f"127.0.0.1:{self.ports[setting]}"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return bookvault(*args, "--state-dir", str(self.state_dir), env=self.env)

    def status(self) -> dict[str, Any]:
        result = self.run("status", "--json")
        assert result.returncode == 0, result.stderr
        report: dict[str, Any] = json.loads(result.stdout)
        return report

    def component(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = next(c for c in self.status()["components"] if c["name"] == name)
        return found


@pytest.fixture(scope="module")
def cli_stack() -> Iterator[CliStack]:
    root = reachable_dir()
    stack = CliStack(root / "state", free_port_block(CLI_PORTS))
    started = stack.run("up", "--detach")
    try:
        assert started.returncode == 0, started.stderr
        yield stack
    finally:
        stack.run("down")
        shutil.rmtree(root, ignore_errors=True)


def test_status_json_reports_the_stack(cli_stack: CliStack) -> None:
    report = cli_stack.status()
    for key in ("gateway_url", "services", "postgres", "redis_url", "profile"):
        assert key in report
    assert report["gateway_url"] == f"http://{cli_stack.url('BOOKVAULT_GATEWAY_PORT')}"
    assert report["services"]["catalog"] == f"http://{cli_stack.url('BOOKVAULT_CATALOG_PORT')}"
    assert report["postgres"]["primary_dsn"].endswith(f"@{cli_stack.url('BOOKVAULT_POSTGRES_PORT')}/postgres")
    assert report["postgres"]["replica_dsns"][0].endswith(
        f"@{cli_stack.url('BOOKVAULT_REPLICA_PORT')}/postgres"
    )
    replica = report["postgres"]["replicas"][0]
    assert replica["streaming"] is True
    assert replica["lag_bytes"] >= 0
    assert replica["lag_seconds"] >= 0
    assert replica["replay_lsn"]
    assert report["redis"]["maxmemory_policy"] == "allkeys-lru"
    assert report["profile"] == "baseline"
    names = (
        "postgres-primary",
        "postgres-replica",
        "redis",
        "catalog",
        "borrowing",
        "accounts",
        "gateway",
        "worker-1",
    )
    assert {c["name"]: c["state"] for c in report["components"]} == dict.fromkeys(names, "running")
    # The event flow: each outbox's backlog and the late-fee consumer group's lag.
    assert {o["service"]: o["state"] for o in report["events"]["outbox"]} == {
        "borrowing": "up",
        "accounts": "up",
    }
    assert [(s["stream"], s["group"], s["lag"]) for s in report["events"]["streams"]] == [
        ("events:loans", "late-fees", 0),
        ("events:accounts", "summaries", 0),
    ]


def test_a_second_up_says_already_running(cli_stack: CliStack) -> None:
    result = cli_stack.run("up", "--detach")
    assert result.returncode == 0
    assert "already running" in result.stdout


def test_a_killed_service_is_restarted(cli_stack: CliStack) -> None:
    before = cli_stack.component("catalog")
    os.kill(before["pid"], 9)
    deadline = time.monotonic() + 20
    after = before
    while time.monotonic() < deadline:
        after = cli_stack.component("catalog")
        if after["pid"] not in (None, before["pid"]) and after["state"] == "running":
            break
        time.sleep(0.2)
    assert after["state"] == "running"
    assert after["pid"] != before["pid"]
    assert after["restarts"] == before["restarts"] + 1
    log = (cli_stack.state_dir / "logs" / "supervisor.log").read_text()
    assert "catalog exited with status -9; restarting" in log


def test_token_is_signed_with_the_stack_key(cli_stack: CliStack) -> None:
    from bookvault.auth import TokenCodec

    result = cli_stack.run("token", "--member", "42", "--role", "admin", "--ttl", "60")
    assert result.returncode == 0, result.stderr
    key = (cli_stack.state_dir / "secrets" / "jwt.key").read_text().strip()
    principal = TokenCodec(key).verify(result.stdout.strip())
    assert (principal.subject, principal.role) == ("42", "admin")


def test_seed_uses_an_external_database_url(cli_stack: CliStack, scratch: Path) -> None:
    dsn = cli_stack.status()["postgres"]["primary_dsn"]
    env = {**cli_stack.env, "BOOKVAULT_DATABASE_URL": dsn}
    result = bookvault("seed", "--books", "25", "--members", "5", "--state-dir", str(scratch), env=env)
    assert result.returncode == 0, result.stderr
    assert "books: 25 loaded" in result.stdout
    assert "members: 5 loaded" in result.stdout


def test_seed_without_a_stack_is_one_clear_line(scratch: Path) -> None:
    result = bookvault("seed", "--state-dir", str(scratch), env=cli_environment(CLI_PORTS))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "is not running" in result.stderr
    assert "bookvault up" in result.stderr


def test_a_port_in_use_is_one_clear_line(scratch: Path) -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {**cli_environment(CLI_PORTS), "BOOKVAULT_POSTGRES_PORT": str(port)}
        result = bookvault("up", "--detach", "--state-dir", str(scratch / "state"), env=env)
    assert result.returncode == 1
    assert result.stderr == (
        f"bookvault: port {port} (postgres primary) is in use: "
        "stop what uses it or set BOOKVAULT_POSTGRES_PORT\n"
    )


def _processes_of(state_dir: Path, groups: set[int]) -> list[str]:
    """Processes whose command line names the state dir or that belong to a recorded group."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] == "Z":
            continue
        if str(state_dir) in cmdline or int(fields[2]) in groups:
            found.append(f"{entry.name} {cmdline}")
    return found


def test_down_leaves_no_process_behind(cli_stack: CliStack) -> None:
    report = cli_stack.status()
    groups = {c["pid"] for c in report["components"] if c["pid"]}
    assert len(groups) == 8  # 7 components and one worker
    result = cli_stack.run("down")
    assert result.returncode == 0, result.stderr
    assert "stopped" in result.stdout
    assert _processes_of(cli_stack.state_dir, groups) == []
    again = cli_stack.run("down")
    assert again.returncode == 0
    assert "not running" in again.stdout
    status = cli_stack.run("status", "--json")
    assert status.returncode == 1
    assert json.loads(status.stdout)["running"] is False
