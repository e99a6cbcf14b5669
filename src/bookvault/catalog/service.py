"""The catalog's use cases: reading and editing books, and the copy reservations
the borrowing service makes and releases.

Each method is one unit of work: a single statement through the pool, or one
transaction on one connection when several statements must agree. After a commit
that changed a book, `on_change(book_id)` runs (cache invalidation and the
gateway's purge); it must not raise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from bookvault.catalog import repo
from bookvault.catalog.cursor import encode_cursor
from bookvault.catalog.errors import BookNotFound, CopiesOnLoan, NoCopyAvailable, ReservationFenced
from bookvault.catalog.rules import apply_changes, clean_changes, clean_new_book
from bookvault.catalog.schemas import (
    Book,
    BookChanges,
    BookPage,
    GenreStatsReport,
    NewBook,
    ReservationView,
    SearchResults,
)
from bookvault.patterns.clock import Clock, SystemClock

__all__ = ["CatalogService"]

# A release meets at most one concurrent reserve of the same id (see `release`),
# so a third pass would mean a bug, not contention.
_RELEASE_PASSES = 3


class CatalogService:
    __slots__ = ("_clock", "_on_change", "_pool")

    def __init__(
        self,
        pool: asyncpg.Pool[asyncpg.Record],
        clock: Clock | None = None,
        on_change: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self._pool = pool
        self._clock = clock or SystemClock()
        self._on_change = on_change

    async def _changed(self, book_id: int) -> None:
        # Called after the commit, never inside the transaction.
        if self._on_change is not None:
            await self._on_change(book_id)

    # --- reads ------------------------------------------------------------

    async def get_book(self, book_id: int) -> Book:
        book = await repo.fetch_book(self._pool, book_id)
        if book is None:
            raise BookNotFound(book_id)
        return book

    async def list_books(
        self, *, genre: str | None, author: str | None, limit: int, after_id: int = 0
    ) -> BookPage:
        # One row more than asked tells whether another page exists, so the last
        # page carries no cursor and nobody fetches an empty page.
        books = await repo.list_books(
            self._pool, after_id=after_id, limit=limit + 1, genre=genre, author=author
        )
        if len(books) > limit:
            del books[limit:]
            return BookPage(items=books, next_cursor=encode_cursor(books[-1].id))
        return BookPage(items=books, next_cursor=None)

    async def search(self, query: str, limit: int) -> SearchResults:
        return SearchResults(items=await repo.search_books(self._pool, query, limit))

    async def genre_stats(self) -> GenreStatsReport:
        # Computed live, so the figures are at least as fresh as the moment asked.
        as_of = datetime.fromtimestamp(self._clock.time(), UTC)
        return GenreStatsReport(as_of=as_of, items=await repo.genre_stats(self._pool))

    # --- edits ------------------------------------------------------------

    async def create_book(self, new_book: NewBook) -> Book:
        book = await repo.insert_book(self._pool, clean_new_book(new_book, self._clock))
        await self._changed(book.id)
        return book

    async def update_book(self, book_id: int, changes: BookChanges) -> Book:
        cleaned = clean_changes(changes, self._clock)
        async with self._pool.acquire() as conn, conn.transaction():
            # The row lock keeps reservations out while the copy arithmetic is done.
            current = await repo.lock_book(conn, book_id)
            if current is None:
                raise BookNotFound(book_id)
            book = await repo.update_book(conn, apply_changes(current, cleaned))
        await self._changed(book_id)
        return book

    async def delete_book(self, book_id: int) -> None:
        if await repo.delete_unlent_book(self._pool, book_id):
            await self._changed(book_id)
            return
        on_loan = await repo.copies_on_loan(self._pool, book_id)
        if on_loan is None:
            raise BookNotFound(book_id)
        raise CopiesOnLoan(f"book {book_id} has {on_loan} copies on loan; delete it once they are back")

    # --- reservations (internal API for borrowing) -------------------------

    async def reserve(self, book_id: int, reservation_id: str) -> tuple[ReservationView, bool]:
        """Take one copy of `book_id` for `reservation_id`; True when it was taken now,
        False when this id already holds it (a retry).

        The reservation row is inserted first: a duplicate id then never touches
        the copies, and a concurrent duplicate waits for the first to finish.
        """
        existing: ReservationView | None = None
        async with self._pool.acquire() as conn, conn.transaction():
            taken = await repo.insert_reservation(conn, reservation_id, book_id)
            if taken:
                if not await repo.take_copy(conn, book_id):
                    raise NoCopyAvailable(book_id)  # rolls the reservation row back too
            else:
                existing = await repo.get_reservation(conn, reservation_id)
        if taken:
            await self._changed(book_id)
            return ReservationView(reservation_id, book_id, "reserved"), True
        if existing is None:  # ON CONFLICT found the row, so only a bug gets here
            raise RuntimeError(f"reservation {reservation_id!r} vanished while being read")
        if existing.state == "released":
            raise ReservationFenced(
                f"reservation {reservation_id!r} was already released; use a new reservation id"
            )
        if existing.book_id != book_id:
            raise ReservationFenced(
                f"reservation {reservation_id!r} holds a copy of book {existing.book_id}, "
                f"not of book {book_id}"
            )
        return existing, False

    async def release(self, reservation_id: str) -> ReservationView:
        """Give the copy held by `reservation_id` back, once, however often asked.

        An id never reserved is recorded as released (a tombstone), so a reserve
        that arrives late, after its compensation, is refused instead of taking a
        copy nobody will return.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            view, returned = await self._release_in(conn, reservation_id)
        if returned and view.book_id is not None:
            await self._changed(view.book_id)
        return view

    async def _release_in(self, conn: repo.Connection, reservation_id: str) -> tuple[ReservationView, bool]:
        """The release inside its transaction; True when a copy went back to the shelf now."""
        for _ in range(_RELEASE_PASSES):
            book_id = await repo.mark_released(conn, reservation_id)
            if book_id is not None:
                await repo.return_copy(conn, book_id)
                return ReservationView(reservation_id, book_id, "released"), True
            existing = await repo.get_reservation(conn, reservation_id)
            if existing is not None and existing.state == "released":
                return existing, False
            if existing is None and await repo.insert_tombstone(conn, reservation_id):
                return ReservationView(reservation_id, None, "released"), False
            # A reserve of this id committed since the UPDATE looked: release it on the next pass.
        raise RuntimeError(f"reservation {reservation_id!r} could not be released")
