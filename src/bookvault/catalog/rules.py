"""What makes a book valid beyond types and lengths: normalised ISBNs, text that
is neither blank nor full of control characters, a publication year not far in
the future, and the copy arithmetic of a change to `total_copies`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import msgspec

from bookvault.catalog.errors import CopiesOnLoan, InvalidBook
from bookvault.catalog.isbn import InvalidISBN, normalize_isbn
from bookvault.catalog.schemas import Book, BookChanges, NewBook
from bookvault.patterns.clock import Clock

__all__ = ["apply_changes", "clean_changes", "clean_new_book", "has_unsafe_characters"]

# PostgreSQL refuses NUL in text and lone surrogates cannot be encoded as UTF-8;
# other control characters are never part of a title and only confuse displays.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_TEXT_FIELDS = ("title", "author", "genre")


def has_unsafe_characters(text: str) -> bool:
    return _UNSAFE.search(text) is not None


def _clean_text(value: str, field: str) -> str:
    text = value.strip()
    if not text:
        raise InvalidBook(f"{field} must not be blank")
    if has_unsafe_characters(text):
        raise InvalidBook(f"{field} must not contain control characters")
    return text


def _clean_isbn(raw: str) -> str:
    try:
        return normalize_isbn(raw)
    except InvalidISBN as exc:
        raise InvalidBook(str(exc)) from None


def _check_year(year: int, clock: Clock) -> None:
    # Next year is allowed: publishers announce books before they are printed.
    latest = datetime.fromtimestamp(clock.time(), UTC).year + 1
    if year > latest:
        raise InvalidBook(f"published_year must be {latest} or earlier, got {year}")


def _given(changes: BookChanges) -> dict[str, Any]:
    """The fields the caller sent, by name."""
    return {
        field: value
        for field in changes.__struct_fields__
        if (value := getattr(changes, field)) is not msgspec.UNSET
    }


def clean_new_book(book: NewBook, clock: Clock) -> NewBook:
    """`book` with its ISBN normalised and text trimmed, or `InvalidBook`."""
    _check_year(book.published_year, clock)
    return msgspec.structs.replace(
        book,
        isbn=_clean_isbn(book.isbn),
        title=_clean_text(book.title, "title"),
        author=_clean_text(book.author, "author"),
        genre=_clean_text(book.genre, "genre"),
    )


def clean_changes(changes: BookChanges, clock: Clock) -> BookChanges:
    """`changes` cleaned like a new book, field by field; an empty change is refused."""
    given = _given(changes)
    if not given:
        raise InvalidBook(
            "the body must change at least one of isbn, title, author, genre, "
            "published_year, total_copies, rating"
        )
    cleaned: dict[str, object] = {}
    for field in _TEXT_FIELDS:
        if field in given:
            cleaned[field] = _clean_text(given[field], field)
    if "isbn" in given:
        cleaned["isbn"] = _clean_isbn(given["isbn"])
    if "published_year" in given:
        _check_year(given["published_year"], clock)
    return msgspec.structs.replace(changes, **cleaned)


def apply_changes(current: Book, changes: BookChanges) -> Book:
    """The book after `changes`. A new `total_copies` moves `available_copies` by the
    same amount, since the copies on loan stay on loan; it may not go below them."""
    updates = _given(changes)
    total = updates.get("total_copies", current.total_copies)
    on_loan = current.total_copies - current.available_copies
    if total < on_loan:
        raise CopiesOnLoan(
            f"book {current.id} has {on_loan} copies on loan; total_copies cannot go below {on_loan}"
        )
    updates["available_copies"] = total - on_loan
    return msgspec.structs.replace(current, **updates)
