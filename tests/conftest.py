"""Session fixtures: the real stack, started once with the project's own stack code.

    infra           Settings: PostgreSQL primary + streaming replica + Redis, migrated
    system          Settings: `infra` plus catalog, borrowing, accounts and the gateway
    system_control  stop_service(name) / start_service(name) on the running system
    token_codec     TokenCodec with the stack's signing key
    make_token      make_token(sub, role="member", ttl_s=3600) -> str
    local_stack     the session's settings, state paths and Supervisor (to add processes of your own)

Everything listens on test ports (below) so a developer's own `bookvault up` keeps
running alongside, and is stopped at the end of the session. When another test
session holds those ports, all of them move up by a multiple of 100.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bookvault.auth import Role, TokenCodec
from bookvault.config import Settings, load_settings
from bookvault.stack import (
    START_ORDER,
    StatePaths,
    Supervisor,
    check_ports,
    migrate,
    prepare,
    start_infrastructure,
    start_services,
)
from bookvault.stack.ports import free_port_block

TEST_PORTS = {
    "postgres_port": 55432,
    "replica_port": 55433,
    "redis_port": 56379,
    "gateway_port": 18080,
    "catalog_port": 18081,
    "borrowing_port": 18082,
    "accounts_port": 18083,
}
_WATCH_INTERVAL_S = 0.2

MakeToken = Callable[..., str]


class LocalStack:
    """The session's settings, state directory and supervisor."""

    def __init__(self, settings: Settings, paths: StatePaths) -> None:
        self.settings = settings
        self.paths = paths
        self.supervisor = Supervisor()


class SystemControl:
    """Stops and starts services of the running system, waiting until down or healthy."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def stop_service(self, name: str) -> None:
        self._supervisor.stop(name)

    def start_service(self, name: str) -> None:
        self._supervisor.start(name)


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    # Not pytest's tmp_path: that is private to the current user (0700), and as root
    # PostgreSQL runs as user `postgres`, which must reach its data directory.
    state_dir = Path(tempfile.mkdtemp(prefix="bookvault-test-"))
    state_dir.chmod(0o755)
    # An empty environment: a developer's BOOKVAULT_* variables or bookvault.toml
    # must never point the tests at their own databases.
    ports = free_port_block(TEST_PORTS)
    base = load_settings({"BOOKVAULT_CONFIG": os.devnull}, state_dir=state_dir, **ports)
    settings, paths = prepare(base)
    stack = LocalStack(settings, paths)
    try:
        yield stack
    finally:
        stack.supervisor.stop_all()
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def infra(local_stack: LocalStack) -> Settings:
    """PostgreSQL primary + streaming replica + Redis, migrated; stopped at session end."""
    check_ports(local_stack.settings)
    settings = await asyncio.to_thread(
        start_infrastructure, local_stack.settings, local_stack.paths, local_stack.supervisor
    )
    await migrate(settings)
    local_stack.settings = settings
    return settings


@pytest.fixture(scope="session")
def system(infra: Settings, local_stack: LocalStack) -> Iterator[Settings]:
    """`infra` plus every service and the gateway as real granian processes, supervised
    (a crashed one is restarted) like `bookvault up` does."""
    check_ports(infra, START_ORDER)
    supervisor = local_stack.supervisor
    start_services(infra, local_stack.paths, supervisor)
    stop_watching = threading.Event()

    def watch() -> None:
        while not stop_watching.wait(_WATCH_INTERVAL_S):
            supervisor.check()

    watcher = threading.Thread(target=watch, name="stack-watcher", daemon=True)
    watcher.start()
    try:
        yield infra
    finally:
        stop_watching.set()
        watcher.join()
        for name in reversed(START_ORDER):
            supervisor.stop(name)


@pytest.fixture(scope="session")
def system_control(system: Settings, local_stack: LocalStack) -> SystemControl:
    return SystemControl(local_stack.supervisor)


@pytest.fixture(scope="session")
def token_codec(local_stack: LocalStack) -> TokenCodec:
    settings = local_stack.settings
    return TokenCodec(settings.resolved_jwt_secret(), settings.jwt_algorithm, settings.jwt_issuer)


@pytest.fixture(scope="session")
def make_token(token_codec: TokenCodec) -> MakeToken:
    def make(sub: str, role: Role = "member", ttl_s: int = 3600) -> str:
        return token_codec.sign(sub, role, ttl_s)

    return make
