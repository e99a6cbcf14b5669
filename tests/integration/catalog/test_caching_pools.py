"""`tuned_pools`: a pooled read costs one statement, not one plus asyncpg's reset.

Statements are counted with asyncpg's query logging on every connection of the
pool, which sees the reset too (it is sent over the same connection).
"""

from __future__ import annotations

import asyncpg
import pytest

from bookvault.catalog import repo
from bookvault.catalog.schemas import NewBook
from bookvault.config import Settings
from bookvault.db.pool import open_pool

from .conftest import new_isbn

pytestmark = pytest.mark.stack

READS = 20


async def _statements_per_read(infra: Settings, *, tuned: bool) -> float:
    statements: list[str] = []

    async def log_queries(conn: asyncpg.Connection[asyncpg.Record]) -> None:
        conn.add_query_logger(lambda record: statements.append(record.query))

    pool = await open_pool(
        infra.service_database_url("catalog"),
        min_size=1,
        max_size=2,
        name="catalog-test",
        tuned=tuned,
        init=log_queries,
    )
    try:
        book = await repo.insert_book(
            pool,
            NewBook(
                isbn=new_isbn(),
                title="Counted",
                author="Ada Reed",
                genre="Mystery",
                published_year=2001,
                total_copies=1,
            ),
        )
        statements.clear()
        for _ in range(READS):
            assert await repo.fetch_book(pool, book.id) == book
    finally:
        await pool.close()
    return len(statements) / READS


async def test_tuned_pools_send_one_statement_per_read(infra: Settings) -> None:
    assert await _statements_per_read(infra, tuned=True) == 1


async def test_default_pools_add_a_reset_to_every_read(infra: Settings) -> None:
    assert await _statements_per_read(infra, tuned=False) == 2
