"""The catalog API's request and response bodies.

Request bodies refuse unknown fields, so a typo (`copies` for `total_copies`) is a
422 rather than a silently ignored field. Types, lengths and ranges are checked
here by msgspec; rules that need more than one value or the clock live in `rules`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

__all__ = [
    "MAX_AUTHOR_LENGTH",
    "MAX_COPIES",
    "MAX_GENRE_LENGTH",
    "Book",
    "BookChanges",
    "BookPage",
    "GenreStats",
    "GenreStatsReport",
    "NewBook",
    "ReservationRequest",
    "ReservationState",
    "ReservationView",
    "SearchResults",
]

# Far above any library's holding, and far below PostgreSQL's integer limit, so an
# absurd number is a clear 422 instead of a database overflow.
MAX_COPIES = 100_000
MAX_AUTHOR_LENGTH = 200
MAX_GENRE_LENGTH = 64

Isbn = Annotated[str, msgspec.Meta(min_length=10, max_length=17)]  # 13 digits and 4 hyphens at most
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Author = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_AUTHOR_LENGTH)]
Genre = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_GENRE_LENGTH)]
Year = Annotated[int, msgspec.Meta(ge=1000, le=9999)]
Copies = Annotated[int, msgspec.Meta(ge=0, le=MAX_COPIES)]
Rating = Annotated[float, msgspec.Meta(ge=0, le=5)]
ReservationState = Literal["reserved", "released"]


class Book(msgspec.Struct, frozen=True, gc=False):
    """A book as every endpoint returns it. Field order is the column order of
    `repo.BOOK_COLUMNS`, so a row becomes a Book positionally, without a dict."""

    id: int
    isbn: str
    title: str
    author: str
    genre: str
    published_year: int
    total_copies: int
    available_copies: int
    rating: float | None
    updated_at: datetime


class NewBook(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    isbn: Isbn
    title: Title
    author: Author
    genre: Genre
    published_year: Year
    total_copies: Copies
    rating: Rating | None = None


class BookChanges(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A partial update: fields left out keep their value; `rating: null` clears it.
    `available_copies` is not here on purpose: it follows `total_copies` and loans."""

    isbn: Isbn | msgspec.UnsetType = msgspec.UNSET
    title: Title | msgspec.UnsetType = msgspec.UNSET
    author: Author | msgspec.UnsetType = msgspec.UNSET
    genre: Genre | msgspec.UnsetType = msgspec.UNSET
    published_year: Year | msgspec.UnsetType = msgspec.UNSET
    total_copies: Copies | msgspec.UnsetType = msgspec.UNSET
    rating: Rating | msgspec.UnsetType | None = msgspec.UNSET


class BookPage(msgspec.Struct, frozen=True, gc=False):
    items: list[Book]
    next_cursor: str | None


class SearchResults(msgspec.Struct, frozen=True, gc=False):
    items: list[Book]


class GenreStats(msgspec.Struct, frozen=True, gc=False):
    genre: str
    total_books: int
    total_copies: int
    avg_rating: float | None


class GenreStatsReport(msgspec.Struct, frozen=True, gc=False):
    as_of: datetime
    items: list[GenreStats]


class ReservationRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    reservation_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class ReservationView(msgspec.Struct, frozen=True, gc=False):
    """A reservation as the internal API returns it. `book_id` is null only for the
    tombstone left by releasing an id that was never reserved."""

    reservation_id: str
    book_id: int | None
    state: ReservationState
