"""Opaque page cursors for keyset pagination.

A cursor is the last id of a page, base64url-encoded so callers treat it as a
token rather than an offset they could edit or compute.
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["InvalidCursor", "decode_cursor", "encode_cursor"]

_PREFIX = "b:"
_SHAPE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_MAX_ID = 2**63 - 1
_MESSAGE = "cursor is not one this API returned; start again without it"


class InvalidCursor(ValueError):
    """The cursor was not made by `encode_cursor`."""


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{last_id}".encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> int:
    """The id after which the next page starts."""
    if not _SHAPE.match(cursor):
        raise InvalidCursor(_MESSAGE)
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        text = base64.urlsafe_b64decode(padded).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidCursor(_MESSAGE) from None
    digits = text.removeprefix(_PREFIX)
    if digits == text or not digits.isdigit() or len(digits) > 19 or not 0 < int(digits) <= _MAX_ID:
        raise InvalidCursor(_MESSAGE)
    return int(digits)
