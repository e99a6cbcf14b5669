"""PostgreSQL primary + replica and Redis: started here unless settings point elsewhere.

Each of `database_url`, `replica_urls` and `redis_url` is independent: a set one
is used as given, an unset one is started and filled in. A replica is made only
for a primary we run ourselves (we cannot clone someone else's server).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable

from bookvault.config import Settings
from bookvault.stack import postgres, redis
from bookvault.stack.binaries import REDIS_INSTALL_HINT, postgres_bin_dir, postgres_tool, program
from bookvault.stack.masking import mask_password
from bookvault.stack.paths import StatePaths
from bookvault.stack.ports import ensure_port_free
from bookvault.stack.processes import ChildProcess
from bookvault.stack.runas import ensure_reachable, make_owned_dir, postgres_runner
from bookvault.stack.secrets import jwt_key, read_or_create
from bookvault.stack.supervisor import Component, Supervisor

POSTGRES_PASSWORD_FILE = "postgres.password"  # noqa: S105 - a file name, not a password
REDIS_PASSWORD_FILE = "redis.password"  # noqa: S105 - a file name, not a password


def prepare(settings: Settings) -> tuple[Settings, StatePaths]:
    """Make the state directory and the JWT key; return settings that name them absolutely."""
    paths = StatePaths.at(settings.state_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(exist_ok=True)
    paths.secrets.mkdir(mode=0o700, exist_ok=True)
    paths.secrets.chmod(0o700)
    settings = dataclasses.replace(settings, state_dir=paths.root)
    key = settings.jwt_secret or read_or_create(settings.jwt_key_file, jwt_key)
    return dataclasses.replace(settings, jwt_secret=key), paths


def check_ports(settings: Settings, services: tuple[str, ...] = ()) -> None:
    """Fail before starting anything when a port we would listen on is taken."""
    wanted: list[tuple[int, str, str]] = []
    if settings.database_url is None:
        wanted.append((settings.postgres_port, "postgres primary", "BOOKVAULT_POSTGRES_PORT"))
        if not settings.replica_urls:
            wanted.append((settings.replica_port, "postgres replica", "BOOKVAULT_REPLICA_PORT"))
    if settings.redis_url is None:
        wanted.append((settings.redis_port, "redis", "BOOKVAULT_REDIS_PORT"))
    for name in services:
        wanted.append((settings.service_port(name), name, f"BOOKVAULT_{name.upper()}_PORT"))
    for port, component, setting in wanted:
        ensure_port_free(settings.host, port, component, setting)


def start_infrastructure(
    settings: Settings,
    paths: StatePaths,
    supervisor: Supervisor,
    emit: Callable[[str], None] = lambda _l: None,
) -> Settings:
    """Start what is not configured externally; return settings with every URL filled in."""
    if settings.database_url is None:
        settings = _start_postgres(settings, paths, supervisor, emit)
    else:
        supervisor.add(Component("postgres-primary", "postgres", mask_password(settings.database_url)))
        for index, replica_url in enumerate(settings.replica_urls, start=1):
            supervisor.add(Component(f"postgres-replica-{index}", "postgres", mask_password(replica_url)))
    if settings.redis_url is None:
        settings = _start_redis(settings, paths, supervisor)
    else:
        supervisor.add(Component("redis", "redis", mask_password(settings.redis_url)))
    return settings


def _start_postgres(
    settings: Settings, paths: StatePaths, supervisor: Supervisor, emit: Callable[[str], None]
) -> Settings:
    bin_dir = postgres_bin_dir()
    for tool in ("postgres", "pg_basebackup", "pg_isready"):
        postgres_tool(tool, bin_dir)
    runner = postgres_runner()
    ensure_reachable(paths.root, runner)
    make_owned_dir(paths.postgres, runner)
    password = read_or_create(paths.secret(POSTGRES_PASSWORD_FILE))
    primary = postgres.PostgresNode("primary", paths.primary_data, settings.postgres_port, paths.sockets)

    def ready(node: postgres.PostgresNode) -> Callable[[ChildProcess], None]:
        return lambda process: postgres.wait_ready(bin_dir, node, process)

    replica = postgres.PostgresNode("replica", paths.replica_data, settings.replica_port, paths.sockets)
    if postgres.init_primary(bin_dir, primary, password, runner, paths.log("postgres-init")):
        emit(f"initialised the postgres primary in {primary.data_dir}")
        # A replica of an earlier primary can never follow this new one.
        shutil.rmtree(replica.data_dir, ignore_errors=True)
    postgres.configure(primary, runner)
    primary_dsn = postgres.dsn(password, primary.port)
    supervisor.add(
        Component(
            "postgres-primary",
            "postgres",
            mask_password(primary_dsn),
            process=postgres.server_process(bin_dir, primary, runner, paths.log("postgres-primary")),
            wait_ready=ready(primary),
        )
    )
    settings = dataclasses.replace(settings, database_url=primary_dsn)
    if settings.replica_urls:
        for index, replica_url in enumerate(settings.replica_urls, start=1):
            supervisor.add(Component(f"postgres-replica-{index}", "postgres", mask_password(replica_url)))
        return settings
    if postgres.make_replica(bin_dir, primary, replica, password, runner, paths.log("postgres-basebackup")):
        emit(f"made the streaming replica in {replica.data_dir}")
    postgres.configure(replica, runner, postgres.replication_conninfo(primary, password))
    replica_dsn = postgres.dsn(password, replica.port)
    supervisor.add(
        Component(
            "postgres-replica",
            "postgres",
            mask_password(replica_dsn),
            process=postgres.server_process(bin_dir, replica, runner, paths.log("postgres-replica")),
            wait_ready=ready(replica),
        )
    )
    return dataclasses.replace(settings, replica_urls=(replica_dsn,))


def _start_redis(settings: Settings, paths: StatePaths, supervisor: Supervisor) -> Settings:
    binary = program("redis-server", REDIS_INSTALL_HINT)
    password = read_or_create(paths.secret(REDIS_PASSWORD_FILE))
    redis_url = redis.url(password, settings.redis_port)
    supervisor.add(
        Component(
            "redis",
            "redis",
            mask_password(redis_url),
            process=redis.server_process(
                binary, paths.redis, settings.redis_port, password, paths.log("redis")
            ),
            wait_ready=lambda process: redis.wait_ready(redis_url, process),
        )
    )
    return dataclasses.replace(settings, redis_url=redis_url)
