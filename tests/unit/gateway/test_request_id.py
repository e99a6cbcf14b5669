import pytest

from bookvault.gateway.request_id import MAX_LENGTH, request_id_for


@pytest.mark.parametrize("supplied", [b"abc", b"trace-01.A_b", b"x" * MAX_LENGTH])
def test_a_sane_caller_id_is_kept(supplied: bytes) -> None:
    assert request_id_for(supplied) == supplied


@pytest.mark.parametrize(
    "supplied",
    [None, b"", b"x" * (MAX_LENGTH + 1), b"has space", b"new\nline", b"semi;colon", "caf\u00e9".encode()],
)
def test_anything_else_is_replaced_by_a_fresh_id(supplied: bytes | None) -> None:
    generated = request_id_for(supplied)
    assert generated != supplied
    assert len(generated) == 32
    assert request_id_for(generated) == generated  # what we make passes our own check


def test_fresh_ids_differ() -> None:
    assert len({request_id_for(None) for _ in range(1000)}) == 1000
