"""The catalog's SQL, and nothing else.

Every function takes the pool (one statement, autocommit) or a connection inside
a transaction the service opened. Values always travel as parameters; the only
text ever chosen at run time is one of the constant statements below. asyncpg
errors that mean something to the domain are translated here, once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from bookvault.catalog.errors import BookNotFound, DuplicateISBN
from bookvault.catalog.schemas import Book, GenreStats, NewBook, ReservationView
from bookvault.patterns.db import BoundReader

__all__ = [
    "BOOK_COLUMNS",
    "Connection",
    "Executor",
    "Reader",
    "copies_on_loan",
    "delete_unlent_book",
    "fetch_book",
    "genre_stats",
    "genre_stats_view",
    "get_reservation",
    "insert_book",
    "insert_reservation",
    "insert_tombstone",
    "list_books",
    "lock_book",
    "mark_released",
    "refresh_genre_stats",
    "return_copy",
    "search_books",
    "search_read_model",
    "take_copy",
    "update_book",
]

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Executor: TypeAlias = "asyncpg.Pool[asyncpg.Record] | Connection"
# Where reads may go: the pool, a connection, or the read router (a replica when it may).
Reader: TypeAlias = "Executor | BoundReader"

# The order of `schemas.Book`'s fields. numeric is sent as float8 so the driver
# hands back a float, which msgspec encodes as a JSON number (a Decimal would be a string).
BOOK_COLUMNS = (
    "id, isbn, title, author, genre, published_year, total_copies, available_copies, "
    "rating::float8 AS rating, updated_at"
)

_FETCH_BOOK = f"SELECT {BOOK_COLUMNS} FROM books WHERE id = $1"  # noqa: S608 - constant column list
_LOCK_BOOK = f"SELECT {BOOK_COLUMNS} FROM books WHERE id = $1 FOR UPDATE"  # noqa: S608 - constant

# One statement per filter combination, so each gets a plan that uses its own index.
_LIST_BOOKS = {
    (False, False): f"SELECT {BOOK_COLUMNS} FROM books WHERE id > $1 ORDER BY id LIMIT $2",  # noqa: S608
    (True, False): f"SELECT {BOOK_COLUMNS} FROM books "  # noqa: S608 - constant
    "WHERE genre = $3 AND id > $1 ORDER BY id LIMIT $2",
    (False, True): f"SELECT {BOOK_COLUMNS} FROM books "  # noqa: S608 - constant
    "WHERE author = $3 AND id > $1 ORDER BY id LIMIT $2",
    (True, True): f"SELECT {BOOK_COLUMNS} FROM books "  # noqa: S608 - constant
    "WHERE genre = $3 AND author = $4 AND id > $1 ORDER BY id LIMIT $2",
}

_SEARCH_BOOKS = f"""
    SELECT {BOOK_COLUMNS}
    FROM books, websearch_to_tsquery('english', $1) AS query
    WHERE search @@ query
    ORDER BY ts_rank(search, query) DESC, id
    LIMIT $2"""  # noqa: S608 - constant column list

# The search read model (book_search, see migration 0002): matched and ranked on its
# own document, the book's columns joined so copy counts are current.
_SEARCH_READ_MODEL = f"""
    SELECT {BOOK_COLUMNS}
    FROM book_search JOIN books ON books.id = book_search.book_id,
         websearch_to_tsquery('english', $1) AS query
    WHERE document @@ query
    ORDER BY ts_rank(document, query) DESC, books.id
    LIMIT $2"""  # noqa: S608 - constant column list

# The materialized view and when it was refreshed, in one round trip (a LEFT JOIN,
# so an empty catalog still says as of when).
_GENRE_STATS_VIEW = """
    SELECT refreshed_at, genre, total_books, total_copies, avg_rating
    FROM read_model_refreshes LEFT JOIN book_statistics ON true
    WHERE name = 'book_statistics'
    ORDER BY genre"""
_REFRESH_GENRE_STATS = "REFRESH MATERIALIZED VIEW CONCURRENTLY book_statistics"
_MARK_REFRESHED = "UPDATE read_model_refreshes SET refreshed_at = now() WHERE name = 'book_statistics'"

_GENRE_STATS = """
    SELECT genre, count(*)::bigint, coalesce(sum(total_copies), 0)::bigint, round(avg(rating), 2)::float8
    FROM books
    GROUP BY genre
    ORDER BY genre"""

# Book writes project the book into the search read model in the same statement
# (data-modifying CTEs are one atomic statement): the model can never miss or lag a
# committed write, so a search right after an edit finds the edit. An outbox event
# and an asynchronous projector would make search eventually consistent for no gain
# here, since the model lives in the same database. Deletes cascade.
_INSERT_BOOK = f"""
    WITH book AS (
        INSERT INTO books (isbn, title, author, genre, published_year, total_copies, available_copies, rating)
        VALUES ($1, $2, $3, $4, $5, $6, $6, $7)
        RETURNING *
    ), projected AS (
        INSERT INTO book_search (book_id, document)
        SELECT id, book_search_document(title, author, genre) FROM book
    )
    SELECT {BOOK_COLUMNS} FROM book"""  # noqa: S608 - constant column list

_UPDATE_BOOK = f"""
    WITH book AS (
        UPDATE books
        SET isbn = $2, title = $3, author = $4, genre = $5, published_year = $6,
            total_copies = $7, available_copies = $8, rating = $9, updated_at = now()
        WHERE id = $1
        RETURNING *
    ), projected AS (
        INSERT INTO book_search (book_id, document)
        SELECT id, book_search_document(title, author, genre) FROM book
        ON CONFLICT (book_id) DO UPDATE SET document = excluded.document, projected_at = now()
    )
    SELECT {BOOK_COLUMNS} FROM book"""  # noqa: S608 - constant column list

# Only a book with every copy on the shelf may go; the check and the delete are
# one statement, so a reservation cannot slip in between.
_DELETE_UNLENT_BOOK = "DELETE FROM books WHERE id = $1 AND available_copies = total_copies RETURNING id"
_COPIES_ON_LOAN = "SELECT total_copies - available_copies FROM books WHERE id = $1"

# `available_copies > 0` in the WHERE clause makes the check and the decrement one
# atomic step: concurrent reservations of the last copy queue on the row lock and
# re-check the condition, so exactly one of them gets it.
_TAKE_COPY = """
    UPDATE books SET available_copies = available_copies - 1, updated_at = now()
    WHERE id = $1 AND available_copies > 0
    RETURNING id"""
_RETURN_COPY = """
    UPDATE books SET available_copies = available_copies + 1, updated_at = now()
    WHERE id = $1"""

# ON CONFLICT waits for a concurrent insert of the same id to finish, so a retried
# reservation racing its original sees the original's outcome instead of an error.
_INSERT_RESERVATION = """
    INSERT INTO reservations (id, book_id, state) VALUES ($1, $2, 'reserved')
    ON CONFLICT (id) DO NOTHING
    RETURNING id"""
_INSERT_TOMBSTONE = """
    INSERT INTO reservations (id, book_id, state, released_at) VALUES ($1, NULL, 'released', now())
    ON CONFLICT (id) DO NOTHING
    RETURNING id"""
_GET_RESERVATION = "SELECT id, book_id, state FROM reservations WHERE id = $1"
_MARK_RELEASED = """
    UPDATE reservations SET state = 'released', released_at = now()
    WHERE id = $1 AND state = 'reserved'
    RETURNING book_id"""


def _book(row: asyncpg.Record) -> Book:
    return Book(*row)


async def fetch_book(db: Reader, book_id: int) -> Book | None:
    row = await db.fetchrow(_FETCH_BOOK, book_id)
    return None if row is None else _book(row)


async def lock_book(conn: Connection, book_id: int) -> Book | None:
    """The book, row-locked until the transaction ends (reservations wait)."""
    row = await conn.fetchrow(_LOCK_BOOK, book_id)
    return None if row is None else _book(row)


async def list_books(
    db: Reader, *, after_id: int, limit: int, genre: str | None, author: str | None
) -> list[Book]:
    filters = [value for value in (genre, author) if value is not None]
    statement = _LIST_BOOKS[(genre is not None, author is not None)]
    rows = await db.fetch(statement, after_id, limit, *filters)
    return [_book(row) for row in rows]


async def search_books(db: Reader, query: str, limit: int) -> list[Book]:
    rows = await db.fetch(_SEARCH_BOOKS, query, limit)
    return [_book(row) for row in rows]


async def search_read_model(db: Reader, query: str, limit: int) -> list[Book]:
    rows = await db.fetch(_SEARCH_READ_MODEL, query, limit)
    return [_book(row) for row in rows]


async def genre_stats(db: Reader) -> list[GenreStats]:
    rows = await db.fetch(_GENRE_STATS)
    return [GenreStats(*row) for row in rows]


async def genre_stats_view(db: Reader) -> tuple[datetime, list[GenreStats]]:
    """The materialized statistics and the time of the refresh that made them."""
    rows = await db.fetch(_GENRE_STATS_VIEW)
    if not rows:
        raise RuntimeError("read_model_refreshes has no book_statistics row; run the migrations")
    as_of: datetime = rows[0]["refreshed_at"]
    return as_of, [GenreStats(*row[1:]) for row in rows if row["genre"] is not None]


async def refresh_genre_stats(conn: Connection) -> None:
    """Rebuild the statistics view without blocking its readers, and note when."""
    async with conn.transaction():
        await conn.execute(_REFRESH_GENRE_STATS)
        await conn.execute(_MARK_REFRESHED)


async def insert_book(db: Executor, book: NewBook) -> Book:
    try:
        row = await db.fetchrow(
            _INSERT_BOOK,
            book.isbn,
            book.title,
            book.author,
            book.genre,
            book.published_year,
            book.total_copies,
            book.rating,
        )
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateISBN(book.isbn) from exc
    return _book(_present(row))


async def update_book(conn: Connection, book: Book) -> Book:
    """Write every column of `book` (the caller holds its row lock)."""
    try:
        row = await conn.fetchrow(
            _UPDATE_BOOK,
            book.id,
            book.isbn,
            book.title,
            book.author,
            book.genre,
            book.published_year,
            book.total_copies,
            book.available_copies,
            book.rating,
        )
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateISBN(book.isbn) from exc
    return _book(_present(row))


async def delete_unlent_book(db: Executor, book_id: int) -> bool:
    """Delete the book if no copy is reserved; False when it was not deleted."""
    return await db.fetchval(_DELETE_UNLENT_BOOK, book_id) is not None


async def copies_on_loan(db: Executor, book_id: int) -> int | None:
    """How many copies are reserved, or None when the book does not exist."""
    value: int | None = await db.fetchval(_COPIES_ON_LOAN, book_id)
    return value


async def take_copy(conn: Connection, book_id: int) -> bool:
    """Take one available copy; False when none is left."""
    return await conn.fetchval(_TAKE_COPY, book_id) is not None


async def return_copy(conn: Connection, book_id: int) -> None:
    await conn.execute(_RETURN_COPY, book_id)


async def insert_reservation(conn: Connection, reservation_id: str, book_id: int) -> bool:
    """Record a new reservation; False when the id already exists."""
    try:
        inserted = await conn.fetchval(_INSERT_RESERVATION, reservation_id, book_id)
    except asyncpg.ForeignKeyViolationError as exc:
        raise BookNotFound(book_id) from exc
    return inserted is not None


async def insert_tombstone(conn: Connection, reservation_id: str) -> bool:
    """Record `reservation_id` as released without a book; False when it exists."""
    return await conn.fetchval(_INSERT_TOMBSTONE, reservation_id) is not None


async def get_reservation(db: Executor, reservation_id: str) -> ReservationView | None:
    row = await db.fetchrow(_GET_RESERVATION, reservation_id)
    return None if row is None else ReservationView(*row)


async def mark_released(conn: Connection, reservation_id: str) -> int | None:
    """Release a held reservation; its book id, or None when it was not held."""
    book_id: int | None = await conn.fetchval(_MARK_RELEASED, reservation_id)
    return book_id


def _present(row: Any) -> asyncpg.Record:
    # INSERT/UPDATE ... RETURNING on an existing row always returns it; None would be a bug.
    if row is None:
        raise RuntimeError("the statement returned no row")
    record: asyncpg.Record = row
    return record
