"""Real services with a `FaultProxy` between them.

Each scenario starts its own borrowing (or gateway) granian process from the
running `system`'s settings, pointed at a fault proxy in front of the real
catalog, with the resilience switches it needs. The proxy runs in the tests'
event loop, so a test switches faults with plain method calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from tests.support.processes import Process, free_port

from bookvault.config import Settings
from bookvault.faults import FaultProxy

MakeToken = Callable[..., str]


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
        settings = dataclasses.replace(
            system, borrowing_port=free_port(), catalog_url=catalog_proxy.url, **overrides
        )
        process = Process.start("borrowing", settings, workdir)
        started.append(process)
        await process.wait_ready()
        return process

    yield start
    for process in started:
        await asyncio.to_thread(process.stop)


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
