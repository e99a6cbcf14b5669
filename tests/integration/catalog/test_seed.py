"""`seed_books` against a database of its own: seeding replaces the catalog, so
it must never run on the one the other tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from bookvault.catalog.isbn import normalize_isbn
from bookvault.catalog.seed import CHUNK_SIZE, GENRES, seed_books
from bookvault.config import Settings, with_database
from bookvault.db.migrations import apply, ensure_database

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
async def seed_dsn(infra: Settings) -> str:
    assert infra.database_url is not None
    await ensure_database(infra.database_url, "catalog_seed_test")
    dsn = with_database(infra.database_url, "catalog_seed_test")
    await apply(dsn, "catalog")
    return dsn


@pytest.fixture
async def seeded(seed_dsn: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(seed_dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def snapshot(conn: asyncpg.Connection[asyncpg.Record]) -> list[tuple[object, ...]]:
    rows = await conn.fetch(
        "SELECT id, isbn, title, author, genre, published_year, total_copies, available_copies, rating "
        "FROM books ORDER BY id"
    )
    return [tuple(row) for row in rows]


async def test_seeding_loads_plausible_books_in_chunks(
    seed_dsn: str, seeded: asyncpg.Connection[asyncpg.Record]
) -> None:
    count = 2 * CHUNK_SIZE + 500
    calls: list[tuple[int, int]] = []
    assert await seed_books(seed_dsn, count, 7, lambda done, total: calls.append((done, total))) == count
    assert calls == [(0, count), (CHUNK_SIZE, count), (2 * CHUNK_SIZE, count), (count, count)]

    books = await snapshot(seeded)
    assert [book[0] for book in books] == list(range(1, count + 1))  # ids restart at 1
    isbns = [str(book[1]) for book in books]
    assert len(set(isbns)) == count
    assert all(normalize_isbn(isbn) == isbn for isbn in isbns[:1000])
    assert {book[4] for book in books} == set(GENRES)
    assert all(1 <= int(str(book[6])) <= 10 and book[6] == book[7] for book in books)
    # Authors write several books each, so filtering by author finds shelves.
    assert len({book[3] for book in books}) < count / 5
    found = await seeded.fetchval(
        "SELECT count(*) FROM books WHERE search @@ websearch_to_tsquery('english', 'silent')"
    )
    assert found > 0


async def test_seeding_again_replaces_the_catalog_with_the_same_books(
    seed_dsn: str, seeded: asyncpg.Connection[asyncpg.Record]
) -> None:
    await seed_books(seed_dsn, 300, 11, lambda _done, _total: None)
    first = await snapshot(seeded)
    await seeded.execute("INSERT INTO reservations (id, book_id, state) VALUES ('left-over', 1, 'reserved')")
    await seed_books(seed_dsn, 300, 11, lambda _done, _total: None)
    assert await snapshot(seeded) == first
    assert await seeded.fetchval("SELECT count(*) FROM reservations") == 0
    await seed_books(seed_dsn, 300, 12, lambda _done, _total: None)
    assert await snapshot(seeded) != first


async def test_seeding_nothing_empties_the_catalog(
    seed_dsn: str, seeded: asyncpg.Connection[asyncpg.Record]
) -> None:
    calls: list[tuple[int, int]] = []
    assert await seed_books(seed_dsn, 0, 1, lambda done, total: calls.append((done, total))) == 0
    assert calls == [(0, 0)]
    assert await seeded.fetchval("SELECT count(*) FROM books") == 0
