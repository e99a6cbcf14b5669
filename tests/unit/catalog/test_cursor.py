import pytest

from bookvault.catalog.cursor import InvalidCursor, decode_cursor, encode_cursor


@pytest.mark.parametrize("last_id", [1, 42, 2**63 - 1])
def test_cursor_round_trips(last_id: int) -> None:
    cursor = encode_cursor(last_id)
    assert str(last_id) not in cursor  # opaque: not an offset a caller would edit
    assert decode_cursor(cursor) == last_id


@pytest.mark.parametrize(
    "cursor",
    [
        "42",  # a raw id is not a cursor
        "!!!",
        "YjotMQ",  # "b:-1"
        "Yjow",  # "b:0"
        "YjphYmM",  # "b:abc"
        "eDo0Mg",  # "x:42": wrong prefix
        "A" * 41,
        "_w",  # not text once decoded
    ],
)
def test_foreign_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor, match="start again without it"):
        decode_cursor(cursor)
