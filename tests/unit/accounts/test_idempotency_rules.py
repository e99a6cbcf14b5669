"""Idempotency keys, request fingerprints and balance arithmetic: pure rules."""

from __future__ import annotations

import msgspec
import pytest

from bookvault.accounts.errors import InvalidRequest
from bookvault.accounts.schemas import Kind, MoneyMovement
from bookvault.accounts.service import (
    key_lock_id,
    parse_idempotency_key,
    request_fingerprint,
    signed_amount,
)
from bookvault.auth import Principal

MEMBER = Principal("42", "member")
BODY = MoneyMovement(amount_cents=1_250, currency="USD")


@pytest.mark.parametrize(
    "key", ["abcdefgh", "x" * 255, "3f1c2b9e-6d7a-4e1f-9a0b-1c2d3e4f5a6b", "pay:42/#1!~"]
)
def test_good_keys_are_kept_as_sent(key: str) -> None:
    assert parse_idempotency_key(key) == key


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "is required"),
        ("", "is required"),
        ("short", "8 to 255"),
        ("x" * 256, "8 to 255"),
        ("with space", "no spaces"),
        ("tab\there!", "visible ASCII"),
        ("clé-unique-1", "visible ASCII"),
    ],
)
def test_bad_keys_say_what_a_good_key_is(raw: str | None, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_idempotency_key(raw)


def test_fingerprint_ignores_json_spelling() -> None:
    spelled_differently = msgspec.json.decode(
        b'{ "currency" : "USD", "amount_cents": 1250 }', type=MoneyMovement
    )
    assert request_fingerprint(MEMBER, "payment", 42, spelled_differently) == request_fingerprint(
        MEMBER, "payment", 42, BODY
    )


@pytest.mark.parametrize(
    ("principal", "kind", "member_id", "body"),
    [
        (Principal("1", "admin"), "payment", 42, BODY),
        (MEMBER, "charge", 42, BODY),
        (MEMBER, "payment", 43, BODY),
        (MEMBER, "payment", 42, MoneyMovement(amount_cents=1_251, currency="USD")),
    ],
    ids=["other-caller", "other-kind", "other-member", "other-amount"],
)
def test_fingerprint_changes_with_caller_endpoint_and_body(
    principal: Principal, kind: Kind, member_id: int, body: MoneyMovement
) -> None:
    assert request_fingerprint(principal, kind, member_id, body) != request_fingerprint(
        MEMBER, "payment", 42, BODY
    )


def test_lock_ids_are_stable_signed_64_bit_and_scoped() -> None:
    lock = key_lock_id(42, "payment", "abcdefgh")
    assert lock == key_lock_id(42, "payment", "abcdefgh")
    assert -(2**63) <= lock < 2**63
    assert len({lock, key_lock_id(43, "payment", "abcdefgh"), key_lock_id(42, "charge", "abcdefgh")}) == 3


def test_payments_add_and_charges_subtract() -> None:
    assert signed_amount("payment", 500) == 500
    assert signed_amount("charge", 500) == -500
