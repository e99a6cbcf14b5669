"""Reference servers measured in the same run as the system: the nginx static
ceiling, the raw-ASGI ceiling and PostgreSQL's own ceilings (pgbench)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bookvault.bench.sample import BOOK_BODY

__all__ = [
    "PgbenchResult",
    "ReferenceUnavailable",
    "conventional_stack",
    "free_port",
    "nginx_static",
    "pgbench",
    "raw_asgi",
]

_READY_TIMEOUT_S = 15.0


class ReferenceUnavailable(RuntimeError):
    """A reference could not be started; the message says what is missing."""


@dataclasses.dataclass(frozen=True, slots=True)
class PgbenchResult:
    mode: str
    clients: int
    tps: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ReferenceUnavailable(f"{name} exited with code {process.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise ReferenceUnavailable(f"{name} did not listen on port {port} within {_READY_TIMEOUT_S:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def _nginx_binary() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and Path(candidate).exists():
            return candidate
    raise ReferenceUnavailable("nginx not found: install it (apt-get install nginx-light)")


@contextlib.contextmanager
def nginx_static() -> Iterator[int]:
    """nginx answering every request with the book body from memory."""
    binary = _nginx_binary()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bookvault-nginx-") as scratch:
        body = BOOK_BODY.decode().replace("\\", "\\\\").replace("'", "\\'")
        config = Path(scratch) / "nginx.conf"
        config.write_text(
            "worker_processes 1;\n"
            f"pid {scratch}/nginx.pid;\n"
            f"error_log {scratch}/error.log warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "  access_log off;\n"
            f"  client_body_temp_path {scratch}/body;\n"
            f"  proxy_temp_path {scratch}/proxy;\n"
            f"  fastcgi_temp_path {scratch}/fastcgi;\n"
            f"  uwsgi_temp_path {scratch}/uwsgi;\n"
            f"  scgi_temp_path {scratch}/scgi;\n"
            "  keepalive_requests 1000000;\n"
            f"  server {{ listen 127.0.0.1:{port};\n"
            f"    location / {{ default_type application/json; return 200 '{body}'; }} }}\n"
            "}\n"
        )
        process = subprocess.Popen(
            [binary, "-c", str(config), "-p", scratch, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_for_port(port, process, "nginx")
            yield port
        finally:
            _stop(process)


@contextlib.contextmanager
def _granian(
    target: str, name: str, *, factory: bool = False, env: dict[str, str] | None = None
) -> Iterator[int]:
    port = free_port()
    args = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--loop", "uvloop", "--no-ws", "--log-level", "warning"]
    if factory:
        args.append("--factory")
    process = subprocess.Popen(
        [*args, target],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    try:
        _wait_for_port(port, process, name)
        yield port
    finally:
        _stop(process)


@contextlib.contextmanager
def raw_asgi() -> Iterator[int]:
    """granian serving a ten-line ASGI app: the Python ceiling."""
    with _granian("bookvault.bench.raw_asgi:app", "raw ASGI reference") as port:
        yield port


@contextlib.contextmanager
def conventional_stack(catalog_dsn: str, redis_url: str) -> Iterator[int]:
    """FastAPI + fastapi-cache2 + slowapi on the same catalog database and Redis."""
    env = {"BOOKVAULT_BENCH_DSN": catalog_dsn, "BOOKVAULT_BENCH_REDIS_URL": redis_url}
    with _granian(
        "bookvault.bench.conventional_app:create_app", "conventional stack", factory=True, env=env
    ) as port:
        yield port


def _pgbench_binary() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), key=lambda p: int(p.parts[-3]))
    if versions:
        return str(versions[-1])
    raise ReferenceUnavailable(
        "pgbench not found: install PostgreSQL client tools (apt-get install postgresql)"
    )


def pgbench(
    dsn: str, *, select_only: bool, clients: int = 16, duration_s: int = 10, scale: int = 1
) -> PgbenchResult:
    """TPC-B (writes) or -S (reads) against `dsn`'s database, initialised first."""
    binary = _pgbench_binary()
    init = subprocess.run(
        [binary, "-i", "-q", "-s", str(scale), dsn], capture_output=True, text=True, timeout=300, check=False
    )
    if init.returncode != 0:
        raise ReferenceUnavailable(f"pgbench -i failed: {init.stderr.strip()[-300:]}")
    args = [binary, "-n", "-c", str(clients), "-j", "2", "-T", str(duration_s)]
    if select_only:
        args.append("-S")
    completed = subprocess.run(
        [*args, dsn], capture_output=True, text=True, timeout=duration_s + 60, check=False
    )
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", completed.stdout)
    if completed.returncode != 0 or match is None:
        raise ReferenceUnavailable(f"pgbench failed: {(completed.stderr or completed.stdout).strip()[-300:]}")
    return PgbenchResult("select-only" if select_only else "tpc-b", clients, float(match.group(1)))
