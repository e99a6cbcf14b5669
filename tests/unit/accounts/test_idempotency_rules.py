"""Idempotency scopes, request fingerprints and balance arithmetic: pure rules."""

from __future__ import annotations

import msgspec
import pytest

from bookvault.accounts.schemas import Kind, MoneyMovement
from bookvault.accounts.service import movement_scope, request_fingerprint, signed_amount
from bookvault.auth import Principal

MEMBER = Principal("42", "member")
BODY = MoneyMovement(amount_cents=1_250, currency="USD")
KEY = "key-abcdefgh"


def test_the_scope_is_caller_method_canonical_path_and_key() -> None:
    scope = movement_scope(MEMBER, 42, "payment", KEY)
    assert (scope.principal, scope.method, scope.path, scope.key) == (
        "member:42",
        "POST",
        "/api/accounts/v1/members/42/payments",
        KEY,
    )
    assert movement_scope(MEMBER, 42, "charge", KEY).path.endswith("/members/42/charges")


def test_an_admin_and_a_member_with_one_key_are_different_scopes() -> None:
    assert movement_scope(Principal("1", "admin"), 42, "payment", KEY) != movement_scope(
        MEMBER, 42, "payment", KEY
    )


def test_fingerprint_ignores_json_spelling() -> None:
    scope = movement_scope(MEMBER, 42, "payment", KEY)
    spelled_differently = msgspec.json.decode(
        b'{ "currency" : "USD", "amount_cents": 1250 }', type=MoneyMovement
    )
    assert request_fingerprint(scope, spelled_differently) == request_fingerprint(scope, BODY)


@pytest.mark.parametrize(
    ("kind", "member_id", "body"),
    [
        ("charge", 42, BODY),
        ("payment", 43, BODY),
        ("payment", 42, MoneyMovement(amount_cents=1_251, currency="USD")),
    ],
    ids=["other-kind", "other-member", "other-amount"],
)
def test_fingerprint_changes_with_endpoint_and_body(kind: Kind, member_id: int, body: MoneyMovement) -> None:
    assert request_fingerprint(movement_scope(MEMBER, member_id, kind, KEY), body) != request_fingerprint(
        movement_scope(MEMBER, 42, "payment", KEY), BODY
    )


def test_payments_add_and_charges_subtract() -> None:
    assert signed_amount("payment", 500) == 500
    assert signed_amount("charge", 500) == -500
