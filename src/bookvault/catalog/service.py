"""The catalog's use cases: reading and editing books, and the copy reservations
the borrowing service makes and releases.

Each method is one unit of work: a single statement through the pool, or one
transaction on one connection when several statements must agree. After a commit
that changed a book, `on_change(book_id)` runs (cache invalidation and the
gateway's purge); it must not raise.

With a read router (switch `replicas`), reads may be served by a replica. A read
names what it must see with `after`: a principal's key (their own writes), a
book's key, or `CATALOG_KEY` (every write); None means any replica in rotation
will do. Every write notes its WAL position under the writer's principal, the
book's key and `CATALOG_KEY` before `on_change` runs, so a cache refilled after
the invalidation is never loaded from a replica that has not replayed the write.

With `read_models` (switch `materialized_views`), search uses the search read
model and genre statistics the materialized view (`as_of` is its last refresh);
`on_edit()` tells the statistics refresher a book was created, edited or deleted.
"""

from __future__ import annotations

import logging
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
from bookvault.patterns.db import ReadRouter

__all__ = ["CATALOG_KEY", "CatalogService", "book_key"]

log = logging.getLogger(__name__)

# Read-your-writes keys for reads shared by every caller (caches, coalesced loads).
CATALOG_KEY = "catalog"


def book_key(book_id: int) -> str:
    return f"book:{book_id}"


# A release meets at most one concurrent reserve of the same id (see `release`),
# so a third pass would mean a bug, not contention.
_RELEASE_PASSES = 3


class CatalogService:
    __slots__ = ("_clock", "_on_change", "_on_edit", "_pool", "_read_models", "_router")

    def __init__(
        self,
        pool: asyncpg.Pool[asyncpg.Record],
        clock: Clock | None = None,
        on_change: Callable[[int], Awaitable[None]] | None = None,
        *,
        router: ReadRouter | None = None,
        read_models: bool = False,
        on_edit: Callable[[], None] | None = None,
    ) -> None:
        self._pool = pool
        self._clock = clock or SystemClock()
        self._on_change = on_change
        self._router = router
        self._read_models = read_models
        self._on_edit = on_edit

    def _reader(self, after: str | None) -> repo.Reader:
        return self._pool if self._router is None else self._router.reader(after)

    async def _changed(self, book_id: int, principal: str | None, *, edit: bool = False) -> None:
        # Called after the commit, never inside the transaction. The position is noted
        # first: a cache fill that starts once `on_change` invalidated must find it.
        if self._router is not None:
            try:
                await self._router.note_write(self._pool, (principal or "", book_key(book_id), CATALOG_KEY))
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                # The write is committed; only its routing hint is lost, so reads may
                # briefly see a replica's older state. The invalidation must still run.
                log.warning("write position of book %s not noted: %s", book_id, exc)
        if edit and self._on_edit is not None:
            self._on_edit()
        if self._on_change is not None:
            await self._on_change(book_id)

    # --- reads ------------------------------------------------------------

    async def get_book(self, book_id: int, *, after: str | None = None) -> Book:
        book = await repo.fetch_book(self._reader(after), book_id)
        if book is None:
            raise BookNotFound(book_id)
        return book

    async def list_books(
        self,
        *,
        genre: str | None,
        author: str | None,
        limit: int,
        after_id: int = 0,
        after: str | None = None,
    ) -> BookPage:
        # One row more than asked tells whether another page exists, so the last
        # page carries no cursor and nobody fetches an empty page.
        books = await repo.list_books(
            self._reader(after), after_id=after_id, limit=limit + 1, genre=genre, author=author
        )
        if len(books) > limit:
            del books[limit:]
            return BookPage(items=books, next_cursor=encode_cursor(books[-1].id))
        return BookPage(items=books, next_cursor=None)

    async def search(self, query: str, limit: int, *, after: str | None = None) -> SearchResults:
        reader = self._reader(after)
        if self._read_models:
            return SearchResults(items=await repo.search_read_model(reader, query, limit))
        return SearchResults(items=await repo.search_books(reader, query, limit))

    async def genre_stats(self, *, after: str | None = None) -> GenreStatsReport:
        if self._read_models:
            as_of, items = await repo.genre_stats_view(self._reader(after))
            return GenreStatsReport(as_of=as_of, items=items)
        # Computed live, so the figures are at least as fresh as the moment asked.
        as_of = datetime.fromtimestamp(self._clock.time(), UTC)
        return GenreStatsReport(as_of=as_of, items=await repo.genre_stats(self._reader(after)))

    # --- edits ------------------------------------------------------------
    # `principal` is the writer's read-your-writes key (None: nobody reads it back).

    async def create_book(self, new_book: NewBook, *, principal: str | None = None) -> Book:
        book = await repo.insert_book(self._pool, clean_new_book(new_book, self._clock))
        await self._changed(book.id, principal, edit=True)
        return book

    async def update_book(self, book_id: int, changes: BookChanges, *, principal: str | None = None) -> Book:
        cleaned = clean_changes(changes, self._clock)
        async with self._pool.acquire() as conn, conn.transaction():
            # The row lock keeps reservations out while the copy arithmetic is done.
            current = await repo.lock_book(conn, book_id)
            if current is None:
                raise BookNotFound(book_id)
            book = await repo.update_book(conn, apply_changes(current, cleaned))
        await self._changed(book_id, principal, edit=True)
        return book

    async def delete_book(self, book_id: int, *, principal: str | None = None) -> None:
        if await repo.delete_unlent_book(self._pool, book_id):
            await self._changed(book_id, principal, edit=True)
            return
        on_loan = await repo.copies_on_loan(self._pool, book_id)
        if on_loan is None:
            raise BookNotFound(book_id)
        raise CopiesOnLoan(f"book {book_id} has {on_loan} copies on loan; delete it once they are back")

    # --- reservations (internal API for borrowing) -------------------------

    async def reserve(
        self, book_id: int, reservation_id: str, *, principal: str | None = None
    ) -> tuple[ReservationView, bool]:
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
            await self._changed(book_id, principal)
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

    async def release(self, reservation_id: str, *, principal: str | None = None) -> ReservationView:
        """Give the copy held by `reservation_id` back, once, however often asked.

        An id never reserved is recorded as released (a tombstone), so a reserve
        that arrives late, after its compensation, is refused instead of taking a
        copy nobody will return.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            view, returned = await self._release_in(conn, reservation_id)
        if returned and view.book_id is not None:
            await self._changed(view.book_id, principal)
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
