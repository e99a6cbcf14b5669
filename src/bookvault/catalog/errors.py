"""What can go wrong in the catalog, as the domain sees it.

    CatalogError
    ├── InvalidBook            the values break a rule the schema cannot express (422)
    ├── BookNotFound           no book has that id (404)
    └── CatalogConflict        the request contradicts the current state (409)
        ├── DuplicateISBN          another book already has that ISBN
        ├── CopiesOnLoan           the change would take away copies that are lent out
        ├── NoCopyAvailable        every copy of the book is reserved
        └── ReservationFenced      the reservation id was released, or belongs to another book

The repository raises these from database errors (`raise ... from exc`), so the
HTTP layer maps one tree to statuses and never sees asyncpg.
"""

from __future__ import annotations

__all__ = [
    "BookNotFound",
    "CatalogConflict",
    "CatalogError",
    "CopiesOnLoan",
    "DuplicateISBN",
    "InvalidBook",
    "NoCopyAvailable",
    "ReservationFenced",
]


class CatalogError(Exception):
    """Base of the catalog's domain errors; the message is safe to show a caller."""


class InvalidBook(CatalogError):
    pass


class BookNotFound(CatalogError):
    def __init__(self, book_id: int) -> None:
        super().__init__(f"book {book_id} does not exist")
        self.book_id = book_id


class CatalogConflict(CatalogError):
    pass


class DuplicateISBN(CatalogConflict):
    def __init__(self, isbn: str) -> None:
        super().__init__(f"a book with isbn {isbn} already exists")
        self.isbn = isbn


class CopiesOnLoan(CatalogConflict):
    pass


class NoCopyAvailable(CatalogConflict):
    def __init__(self, book_id: int) -> None:
        super().__init__(f"no copy of book {book_id} is available")
        self.book_id = book_id


class ReservationFenced(CatalogConflict):
    pass
