"""Helpers for driving the running borrowing service, and the catalog it lends
from, the way a client does; plus a view of borrowing's own loans table, to
check what the saga left behind.

Builds on the session fixtures of tests/conftest.py: `system`, `make_token`,
`token_codec`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from bookvault.auth import TokenCodec
from bookvault.borrowing.catalog_client import CatalogClient, ServiceToken
from bookvault.config import Settings

MakeToken = Callable[..., str]
_random = random.Random()
# Member ids and ISBNs start at a random point so reruns against a kept
# database, and other test modules, never share them.
_members = itertools.count(_random.randrange(10**9, 2 * 10**9, 1000))
_isbn_bodies = itertools.count(_random.randrange(10**8, 9 * 10**8))


def new_isbn13() -> str:
    digits = f"978{next(_isbn_bodies):09d}"
    weighted = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return digits + str(-weighted % 10)


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclasses.dataclass
class Lending:
    """Calls the borrowing and catalog services directly (not through the gateway)
    and returns raw replies, so tests assert on status, headers and bodies."""

    session: aiohttp.ClientSession
    settings: Settings
    make_token: MakeToken

    @property
    def borrowing(self) -> str:
        return f"{self.settings.service_url('borrowing')}/api/borrowing/v1"

    @property
    def catalog(self) -> str:
        return f"{self.settings.service_url('catalog')}/api/catalog/v1"

    @staticmethod
    def new_member() -> int:
        return next(_members)

    def admin(self) -> str:
        return self.make_token("1", "admin")

    def token(self, member_id: int) -> str:
        return self.make_token(str(member_id))

    async def call(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        payload: Any = None,
        data: bytes | None = None,
    ) -> Reply:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.session.request(method, url, json=payload, data=data, headers=headers) as resp:
            return Reply(resp.status, dict(resp.headers), await resp.read())

    async def new_book(self, copies: int) -> int:
        reply = await self.call(
            "POST",
            f"{self.catalog}/books",
            token=self.admin(),
            payload={
                "isbn": new_isbn13(),
                "title": "A Copy to Lend",
                "author": "Mara Quill",
                "genre": "Fiction",
                "published_year": 1999,
                "total_copies": copies,
            },
        )
        assert reply.status == 201, reply.body
        book_id: int = reply.json()["id"]
        return book_id

    async def available_copies(self, book_id: int) -> int:
        reply = await self.call("GET", f"{self.catalog}/books/{book_id}")
        assert reply.status == 200, reply.body
        copies: int = reply.json()["available_copies"]
        return copies

    async def borrow(self, member_id: int, book_id: int, token: str | None = None) -> Reply:
        return await self.call(
            "POST",
            f"{self.borrowing}/loans",
            token=token or self.token(member_id),
            payload={"book_id": book_id},
        )

    async def give_back(self, member_id: int, loan_id: int, token: str | None = None) -> Reply:
        return await self.call(
            "POST", f"{self.borrowing}/loans/{loan_id}/return", token=token or self.token(member_id)
        )

    async def loans_of(self, member_id: int, query: str = "", token: str | None = None) -> Reply:
        return await self.call(
            "GET", f"{self.borrowing}/members/{member_id}/loans{query}", token=token or self.token(member_id)
        )


@pytest.fixture
async def lending(system: Settings, make_token: MakeToken) -> AsyncIterator[Lending]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield Lending(session, system, make_token)


@dataclasses.dataclass(frozen=True, slots=True)
class LoanTable:
    """Borrowing's own `loans` table, read (and aged) directly."""

    pool: asyncpg.Pool

    async def statuses(self, book_id: int) -> list[str]:
        rows = await self.pool.fetch("SELECT status FROM loans WHERE book_id = $1 ORDER BY id", book_id)
        return [row["status"] for row in rows]

    async def reservation_ids(self, book_id: int) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT reservation_id FROM loans WHERE book_id = $1 ORDER BY id", book_id
        )
        return [row["reservation_id"] for row in rows]

    async def move_back(self, loan_id: int, by: timedelta) -> None:
        """Make a loan look as if it had been borrowed `by` earlier."""
        await self.pool.execute(
            """UPDATE loans SET borrowed_at = borrowed_at - $2::interval, due_at = due_at - $2::interval
               WHERE id = $1""",
            loan_id,
            by,
        )


@pytest.fixture(scope="session")
async def loan_table(system: Settings) -> AsyncIterator[LoanTable]:
    pool = await asyncpg.create_pool(system.service_database_url("borrowing"), min_size=1, max_size=2)
    try:
        yield LoanTable(pool)
    finally:
        await pool.close()


@pytest.fixture
async def catalog_client(system: Settings, token_codec: TokenCodec) -> AsyncIterator[CatalogClient]:
    """The borrowing service's own catalog adapter, for driving the reconciler in-process."""
    async with aiohttp.ClientSession() as session:
        yield CatalogClient(
            session, system.service_url("catalog"), ServiceToken(token_codec), system.catalog_timeout_s
        )
