import pytest

from bookvault.web.problems import HTTPProblem
from bookvault.web.validation import parse_id, query_datetime, query_int, reject_unknown_query


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "1.5", "99999999999999999999", "١٢", ""])
def test_bad_ids_are_400(raw: str) -> None:
    with pytest.raises(HTTPProblem) as caught:
        parse_id(raw, "book id")
    assert caught.value.status == 400
    assert "book id" in caught.value.detail


def test_good_id() -> None:
    assert parse_id("9223372036854775807", "id") == 2**63 - 1


def test_page_size_bounds() -> None:
    assert query_int({}, "limit", default=20, minimum=1, maximum=100) == 20
    assert query_int({"limit": "100"}, "limit", default=20, minimum=1, maximum=100) == 100
    for bad in ("0", "101", "ten"):
        with pytest.raises(HTTPProblem, match="limit"):
            query_int({"limit": bad}, "limit", default=20, minimum=1, maximum=100)


def test_timestamps_need_an_offset() -> None:
    assert query_datetime({"as_of": "2026-01-01T00:00:00Z"}, "as_of") is not None
    with pytest.raises(HTTPProblem, match="UTC offset"):
        query_datetime({"as_of": "2026-01-01T00:00:00"}, "as_of")
    with pytest.raises(HTTPProblem, match="RFC 3339"):
        query_datetime({"as_of": "yesterday"}, "as_of")


def test_unknown_query_parameters_are_named() -> None:
    with pytest.raises(HTTPProblem, match="colour"):
        reject_unknown_query({"colour": "red", "limit": "1"}, frozenset({"limit"}))


def test_unencoded_plus_in_offset_is_read_as_meant() -> None:
    value = query_datetime({"as_of": "2026-01-01T10:00:00 02:00"}, "as_of")
    assert value is not None
    assert value.utcoffset() is not None
    assert value.utcoffset().total_seconds() == 7200  # type: ignore[union-attr]


def test_query_text_refuses_control_characters() -> None:
    from bookvault.web.validation import query_text

    assert query_text({"q": "winter tales"}, "q") == "winter tales"
    with pytest.raises(HTTPProblem, match="control characters"):
        query_text({"q": "bad\x00byte"}, "q")
