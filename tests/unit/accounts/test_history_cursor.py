"""History cursors: opaque, exact to the microsecond, and refused when forged."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from bookvault.accounts.errors import InvalidRequest
from bookvault.accounts.service import decode_cursor, encode_cursor


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_cursor_round_trips_exactly(moment: datetime) -> None:
    cursor = encode_cursor(moment, 9_007_199_254_740_993)
    assert cursor.isascii()
    assert "=" not in cursor
    assert decode_cursor(cursor) == (moment, 9_007_199_254_740_993)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor",
        "%%%%",
        _b64(b"12345"),
        _b64(b"12345.abc"),
        _b64(b"99999999999999999999.1"),
        _b64(b"1.2.3"),
        "é" * 8,
        "A" * 65,
    ],
)
def test_forged_cursors_are_invalid_requests(cursor: str) -> None:
    with pytest.raises(InvalidRequest, match="next_cursor"):
        decode_cursor(cursor)
