"""ISBN validation and normalisation.

Every ISBN is stored as its 13-digit form without separators: an ISBN-10 and the
ISBN-13 of the same book are one book, so the unique index can only see one spelling.
"""

from __future__ import annotations

import re

__all__ = ["InvalidISBN", "isbn13_check_digit", "normalize_isbn"]

_SEPARATORS = re.compile(r"[\s-]")
_ISBN10 = re.compile(r"^[0-9]{9}[0-9X]$")
_ISBN13 = re.compile(r"^97[89][0-9]{10}$")


class InvalidISBN(ValueError):
    """The text is not a valid ISBN-10 or ISBN-13; the message says why."""


def isbn13_check_digit(first12: str) -> str:
    """The check digit that completes 12 ASCII digits into an ISBN-13."""
    total = sum(int(digit) * (3 if index % 2 else 1) for index, digit in enumerate(first12))
    return str(-total % 10)


def _isbn10_is_valid(isbn: str) -> bool:
    total = sum((10 - index) * (10 if char == "X" else int(char)) for index, char in enumerate(isbn))
    return total % 11 == 0


def normalize_isbn(raw: str) -> str:
    """The 13-digit form of `raw` (hyphens and spaces allowed), or `InvalidISBN`."""
    compact = _SEPARATORS.sub("", raw).upper()
    if _ISBN10.match(compact):
        if not _isbn10_is_valid(compact):
            raise InvalidISBN(f"isbn {raw[:40]!r} has a wrong ISBN-10 check digit")
        first12 = "978" + compact[:9]
        return first12 + isbn13_check_digit(first12)
    if _ISBN13.match(compact):
        if compact[12] != isbn13_check_digit(compact[:12]):
            raise InvalidISBN(f"isbn {raw[:40]!r} has a wrong ISBN-13 check digit")
        return compact
    raise InvalidISBN(
        f"isbn {raw[:40]!r} must be 10 digits (the last may be X) or 13 digits starting 978 or 979"
    )
