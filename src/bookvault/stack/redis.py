"""The local Redis: the cache sidecar of seed 002 (256 MB, allkeys-lru), no persistence.

Its password is written into a config file only the owner reads, never onto the
command line, where `ps` would show it.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis

from bookvault.stack.errors import StackError
from bookvault.stack.processes import ChildProcess
from bookvault.stack.secrets import write_private

MAXMEMORY = "256mb"
MAXMEMORY_POLICY = "allkeys-lru"
READY_TIMEOUT_S = 20.0


def url(password: str, port: int, host: str = "127.0.0.1") -> str:
    return f"redis://:{password}@{host}:{port}/0"


def config(port: int, password: str, data_dir: Path) -> str:
    return (
        "# Written by bookvault at every start.\n"
        f"port {port}\n"
        "bind 127.0.0.1\n"
        "protected-mode yes\n"
        "daemonize no\n"
        f"requirepass {password}\n"
        f"maxmemory {MAXMEMORY}\n"
        f"maxmemory-policy {MAXMEMORY_POLICY}\n"
        # A cache and a queue for tests and demos: nothing is written to disk.
        'save ""\n'
        "appendonly no\n"
        f"dir {data_dir}\n"
        'logfile ""\n'
    )


def server_process(binary: Path, data_dir: Path, port: int, password: str, log_path: Path) -> ChildProcess:
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    config_path = data_dir / "redis.conf"
    write_private(config_path, config(port, password, data_dir))
    return ChildProcess("redis", [str(binary), str(config_path)], log_path, stop_timeout_s=10.0)


def wait_ready(redis_url: str, process: ChildProcess, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
    try:
        while True:
            code = process.returncode
            if code is not None:
                raise StackError(
                    f"redis exited with status {code} while starting "
                    f"(see {process.log_path}): {process.last_log_line()}"
                )
            try:
                if client.ping():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise StackError(
                    f"redis did not answer PING within {timeout_s:.0f}s "
                    f"(see {process.log_path}): {process.last_log_line()}"
                )
            time.sleep(0.05)
    finally:
        client.close()
