"""Request bodies: what a client may send, and the reason when it may not."""

from __future__ import annotations

import msgspec
import pytest

from bookvault.accounts.schemas import MAX_AMOUNT_CENTS, MoneyMovement, NewMember


def _movement(raw: bytes) -> MoneyMovement:
    return msgspec.json.decode(raw, type=MoneyMovement, strict=True)


def test_a_payment_body_is_integer_cents_in_usd() -> None:
    assert _movement(b'{"amount_cents": 1, "currency": "USD"}') == MoneyMovement(1, "USD")
    cap = f'{{"amount_cents": {MAX_AMOUNT_CENTS}, "currency": "USD"}}'.encode()
    assert _movement(cap).amount_cents == MAX_AMOUNT_CENTS


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"amount_cents": 0, "currency": "USD"}', ">= 1"),
        (b'{"amount_cents": 1.0, "currency": "USD"}', "got `float`"),
        (b'{"amount_cents": true, "currency": "USD"}', "got `bool`"),
        (b'{"amount_cents": 10000001, "currency": "USD"}', "<= 10000000"),
        (b'{"amount_cents": 5, "currency": "usd"}', "currency"),
        (b'{"amount_cents": 5, "currency": "USD", "memo": "x"}', "unknown field `memo`"),
    ],
)
def test_bad_amounts_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        _movement(raw)


def test_new_member_defaults_to_standard_tier() -> None:
    member = msgspec.json.decode(b'{"name": "Ada", "email": "ada@example.org"}', type=NewMember)
    assert member.tier == "standard"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"name": " ", "email": "ada@example.org"}', "name must not be blank"),
        (b'{"name": "Ada", "email": "ada@localhost"}', "email must look like"),
        (b'{"name": "Ada", "email": "a b@example.org"}', "email must look like"),
        (b'{"name": "Ada", "email": "ada@example.org", "tier": "VIP"}', "tier"),
    ],
)
def test_bad_members_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.json.decode(raw, type=NewMember, strict=True)
