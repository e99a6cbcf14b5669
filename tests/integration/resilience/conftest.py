"""Real services with a `FaultProxy` between them.

Each scenario starts its own borrowing (or gateway) granian process from the
running `system`'s settings, pointed at a fault proxy in front of the real
catalog, with the resilience switches it needs. The proxy runs in the tests'
event loop, so a test switches faults with plain method calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bookvault.config import Settings
from bookvault.faults import FaultProxy

_STARTUP_DEADLINE_S = 30.0
MakeToken = Callable[..., str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclasses.dataclass
class Process:
    """One granian process serving `target` with `settings`."""

    name: str
    settings: Settings
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    async def metrics(
        self, session: aiohttp.ClientSession
    ) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample on /metrics, keyed by name and sorted labels."""
        async with session.get(f"{self.url}/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    async def breaker(self, session: aiohttp.ClientSession, dependency: str) -> dict[str, Any]:
        """The breaker's state and counts as this process reports them."""
        samples = await self.metrics(session)
        state = [
            dict(labels)["state"]
            for (name, labels), value in samples.items()
            if name == "bookvault_breaker_state"
            and dict(labels).get("dependency") == dependency
            and value == 1.0
        ]
        key = (("dependency", dependency),)
        return {
            "state": state[0] if state else None,
            "not_permitted": samples.get(("bookvault_breaker_not_permitted_calls_total", key), 0.0),
            "failed": samples.get(("bookvault_breaker_failed_calls", key), 0.0),
            "slow": samples.get(("bookvault_breaker_slow_calls", key), 0.0),
            "buffered": samples.get(("bookvault_breaker_buffered_calls", key), 0.0),
            "bulkhead_rejected": samples.get(("bookvault_bulkhead_rejected_calls_total", key), 0.0),
            "bulkhead_in_flight": samples.get(("bookvault_bulkhead_in_flight", key), 0.0),
        }


def start_process(name: str, target: str, settings: Settings, port: int, workdir: Path) -> Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKVAULT_")}
    env.update(settings.as_environment())
    env["BOOKVAULT_CONFIG"] = os.devnull
    env["PYTHONUNBUFFERED"] = "1"
    log = workdir / f"{name}-{port}.log"
    command = [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--factory",
        "--host",
        settings.host,
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--workers",
        "1",
        target,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    return Process(name, settings, port, process, log)


async def wait_healthy(started: Process) -> None:
    deadline = time.monotonic() + _STARTUP_DEADLINE_S
    async with aiohttp.ClientSession() as client:
        while time.monotonic() < deadline:
            if started.process.poll() is not None:
                break
            try:
                async with client.get(f"{started.url}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)  # polling for startup, not timing an assertion
    stop(started)
    raise RuntimeError(f"{started.name} did not become healthy; its log:\n{started.log.read_text()}")


def stop(started: Process) -> None:
    started.process.terminate()
    try:
        started.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        started.process.kill()
        started.process.wait()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("resilience")


@pytest.fixture
async def catalog_proxy(system: Settings) -> AsyncIterator[FaultProxy]:
    """A fault proxy in front of the system's real catalog (healthy until told otherwise)."""
    async with FaultProxy(upstream_port=system.catalog_port) as proxy:
        yield proxy


StartBorrowing = Callable[..., Any]


@pytest.fixture
async def start_borrowing(
    system: Settings, catalog_proxy: FaultProxy, workdir: Path
) -> AsyncIterator[StartBorrowing]:
    """`await start_borrowing(**settings)`: a borrowing process calling the catalog
    through `catalog_proxy`, with the given setting overrides; stopped after the test."""
    started: list[Process] = []

    async def start(**overrides: Any) -> Process:
        port = free_port()
        settings = dataclasses.replace(
            system, borrowing_port=port, catalog_url=catalog_proxy.url, **overrides
        )
        process = start_process("borrowing", "bookvault.borrowing.app:create_app", settings, port, workdir)
        started.append(process)
        await wait_healthy(process)
        return process

    yield start
    for process in started:
        await asyncio.to_thread(stop, process)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


_isbn_bodies = iter(range(int(time.time() * 1000) % 10**8, 10**9))


def new_isbn13() -> str:
    digits = f"979{next(_isbn_bodies):09d}"
    weighted = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return digits + str(-weighted % 10)


@dataclasses.dataclass
class Library:
    """Books in the real catalog, and borrows through a given borrowing process."""

    http: aiohttp.ClientSession
    system: Settings
    make_token: MakeToken

    async def new_book(self, copies: int) -> int:
        async with self.http.post(
            f"{self.system.service_url('catalog')}/api/catalog/v1/books",
            json={
                "isbn": new_isbn13(),
                "title": "Fault Lines",
                "author": "Ada Breaker",
                "genre": "Fiction",
                "published_year": 2001,
                "total_copies": copies,
            },
            headers={"Authorization": f"Bearer {self.make_token('1', 'admin')}"},
        ) as resp:
            assert resp.status == 201, await resp.text()
            book_id: int = (await resp.json())["id"]
            return book_id

    async def borrow(
        self, borrowing: Process, member_id: int, book_id: int, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        async with self.http.post(
            f"{borrowing.url}/api/borrowing/v1/loans",
            json={"book_id": book_id},
            headers={"Authorization": f"Bearer {self.make_token(str(member_id))}", **(headers or {})},
        ) as resp:
            return resp.status, dict(resp.headers), await resp.json(content_type=None)

    async def loan_statuses(self, book_id: int) -> list[str]:
        conn = await asyncpg.connect(self.system.service_database_url("borrowing"))
        try:
            rows = await conn.fetch("SELECT status FROM loans WHERE book_id = $1 ORDER BY id", book_id)
        finally:
            await conn.close()
        return [row["status"] for row in rows]


@pytest.fixture
def library(http: aiohttp.ClientSession, system: Settings, make_token: MakeToken) -> Library:
    return Library(http, system, make_token)
