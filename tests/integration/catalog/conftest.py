"""Helpers for talking to the running catalog the way its clients do (readers,
admins, and the borrowing service on the internal API), plus the catalog's
service layer on a pool of its own for races that need exact control.

Builds on the session fixtures of tests/conftest.py: `infra`, `system`, `make_token`.
The catalog database is shared with every other test of the session, so each
test makes its own books, under genres, authors and words no other test uses.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import asyncpg
import pytest

from bookvault.catalog.isbn import isbn13_check_digit
from bookvault.catalog.schemas import NewBook
from bookvault.catalog.service import CatalogService
from bookvault.config import Settings

MakeToken = Callable[..., str]
# ISBNs start at a random point so reruns against a kept database, and other
# modules creating books, never collide with ours.
_isbn_bodies = itertools.count(random.Random().randrange(10**8, 9 * 10**8))


def new_isbn() -> str:
    first12 = f"979{next(_isbn_bodies):09d}"
    return first12 + isbn13_check_digit(first12)


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def detail(self) -> str:
        """The problem detail of an error reply."""
        assert self.headers.get("Content-Type", "").startswith("application/problem+json"), self.body
        detail: str = self.json()["detail"]
        return detail


@dataclasses.dataclass
class Catalog:
    """A thin client of the running catalog; every call returns the raw reply."""

    session: aiohttp.ClientSession
    base_url: str
    make_token: MakeToken

    new_isbn = staticmethod(new_isbn)

    @staticmethod
    def unique_word() -> str:
        """A made-up word (letters only, so the full-text parser keeps it whole)."""
        return "zq" + "".join(random.choice("bcdfghjklmnpqrstvwxz") for _ in range(10))

    @staticmethod
    def new_reservation_id() -> str:
        return f"loan-{uuid.uuid4()}"

    def admin(self) -> str:
        return self.make_token("1", "admin")

    def member(self) -> str:
        return self.make_token("42", "member")

    def borrowing(self) -> str:
        return self.make_token("borrowing", "service")

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        payload: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """`path` is relative to the public API (`/books/1`) unless it starts
        with `/internal` or another absolute service path (`/readyz`)."""
        url = self.base_url + (
            path if path.startswith(("/internal", "/readyz")) else f"/api/catalog/v1{path}"
        )
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        async with self.session.request(method, url, json=payload, data=data, headers=sent) as resp:
            return Reply(resp.status, dict(resp.headers), await resp.read())

    async def create(self, **fields: Any) -> dict[str, Any]:
        """Create a book (defaults filled in) as an admin; return its body."""
        payload = {
            "isbn": self.new_isbn(),
            "title": "The Quiet Harbour",
            "author": "Ada Reed",
            "genre": "Mystery",
            "published_year": 2001,
            "total_copies": 2,
            **fields,
        }
        reply = await self.call("POST", "/books", token=self.admin(), payload=payload)
        assert reply.status == 201, reply.body
        book: dict[str, Any] = reply.json()
        return book

    async def book(self, book_id: int) -> dict[str, Any]:
        reply = await self.call("GET", f"/books/{book_id}")
        assert reply.status == 200, reply.body
        book: dict[str, Any] = reply.json()
        return book

    async def reserve(self, book_id: int, reservation_id: str, token: str | None = None) -> Reply:
        return await self.call(
            "POST",
            f"/internal/books/{book_id}/reservations",
            token=token or self.borrowing(),
            payload={"reservation_id": reservation_id},
        )

    async def release(self, reservation_id: str, token: str | None = None) -> Reply:
        return await self.call(
            "POST", f"/internal/reservations/{reservation_id}/release", token=token or self.borrowing()
        )


@pytest.fixture
async def catalog(system: Settings, make_token: MakeToken) -> AsyncIterator[Catalog]:
    # Enough connections for the concurrency tests to really be concurrent.
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield Catalog(session, system.service_url("catalog"), make_token)


@pytest.fixture(scope="session")
async def catalog_pool(infra: Settings) -> AsyncIterator[asyncpg.Pool[asyncpg.Record]]:
    pool: asyncpg.Pool[asyncpg.Record] = await asyncpg.create_pool(
        infra.service_database_url("catalog"), min_size=1, max_size=20
    )
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def catalog_service(catalog_pool: asyncpg.Pool[asyncpg.Record]) -> CatalogService:
    return CatalogService(catalog_pool)


@pytest.fixture
def shelve(catalog_service: CatalogService) -> Callable[[int], Awaitable[int]]:
    """`await shelve(copies)` puts a new book with that many copies in the catalog; its id."""

    async def make(copies: int) -> int:
        book = NewBook(
            isbn=new_isbn(),
            title="Contested Copy",
            author="Ada Reed",
            genre="Mystery",
            published_year=2001,
            total_copies=copies,
        )
        return (await catalog_service.create_book(book)).id

    return make
