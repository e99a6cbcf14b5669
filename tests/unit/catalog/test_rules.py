from datetime import UTC, datetime

import msgspec
import pytest

from bookvault.catalog.errors import CopiesOnLoan, InvalidBook
from bookvault.catalog.rules import apply_changes, clean_changes, clean_new_book
from bookvault.catalog.schemas import Book, BookChanges, NewBook
from bookvault.patterns.clock import FakeClock

# 2027-01-15: books of 2028 may be announced, 2029 is a typo.
CLOCK = FakeClock(wall_start=datetime(2027, 1, 15, tzinfo=UTC).timestamp())


def new_book(**fields: object) -> NewBook:
    values: dict[str, object] = {
        "isbn": "0-306-40615-2",
        "title": "  Dune ",
        "author": "Frank Herbert",
        "genre": "Science Fiction",
        "published_year": 1965,
        "total_copies": 3,
    }
    values.update(fields)
    return msgspec.convert(values, NewBook)


def shelved(total: int, available: int) -> Book:
    return Book(
        id=7,
        isbn="9780306406157",
        title="Dune",
        author="Frank Herbert",
        genre="Science Fiction",
        published_year=1965,
        total_copies=total,
        available_copies=available,
        rating=4.5,
        updated_at=datetime(2027, 1, 1, tzinfo=UTC),
    )


def test_new_book_is_normalised() -> None:
    cleaned = clean_new_book(new_book(), CLOCK)
    assert cleaned.isbn == "9780306406157"
    assert cleaned.title == "Dune"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"title": "   "}, "title must not be blank"),
        ({"author": "Frank\x00Herbert"}, "author must not contain control characters"),
        ({"genre": "Sci\nFi"}, "genre must not contain control characters"),
        ({"isbn": "9780306406158"}, "check digit"),
        ({"published_year": 2029}, "published_year must be 2028 or earlier"),
    ],
)
def test_bad_new_books_are_refused_with_a_reason(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidBook, match=message):
        clean_new_book(new_book(**fields), CLOCK)


def test_next_years_book_is_allowed() -> None:
    assert clean_new_book(new_book(published_year=2028), CLOCK).published_year == 2028


def test_an_empty_change_is_refused() -> None:
    with pytest.raises(InvalidBook, match="at least one"):
        clean_changes(BookChanges(), CLOCK)


def test_changes_are_cleaned_like_new_books() -> None:
    cleaned = clean_changes(BookChanges(title=" Dune Messiah ", isbn="978-0-306-40615-7"), CLOCK)
    assert (cleaned.title, cleaned.isbn) == ("Dune Messiah", "9780306406157")
    assert cleaned.author is msgspec.UNSET
    with pytest.raises(InvalidBook, match="published_year"):
        clean_changes(BookChanges(published_year=2100), CLOCK)


def test_more_copies_are_available_at_once() -> None:
    after = apply_changes(shelved(total=3, available=1), BookChanges(total_copies=5))
    assert (after.total_copies, after.available_copies) == (5, 3)


def test_fewer_copies_keep_the_ones_on_loan() -> None:
    after = apply_changes(shelved(total=5, available=3), BookChanges(total_copies=2))
    assert (after.total_copies, after.available_copies) == (2, 0)


def test_copies_on_loan_cannot_be_removed() -> None:
    with pytest.raises(CopiesOnLoan, match="2 copies on loan"):
        apply_changes(shelved(total=5, available=3), BookChanges(total_copies=1))


def test_rating_can_be_cleared_and_other_fields_stay() -> None:
    after = apply_changes(shelved(total=2, available=2), BookChanges(rating=None))
    assert after.rating is None
    assert (after.title, after.total_copies, after.available_copies) == ("Dune", 2, 2)
