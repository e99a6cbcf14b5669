"""Payments, charges and idempotency keys, against the running accounts service."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest
import redis.asyncio as aioredis

from bookvault.config import Settings

if TYPE_CHECKING:
    from tests.integration.accounts.conftest import Accounts, Reply

pytestmark = pytest.mark.stack


async def test_payments_add_and_charges_subtract(accounts: Accounts) -> None:
    member_id = await accounts.new_member()
    paid = await accounts.pay(member_id, 1_250)
    assert paid.status == 201, paid.body
    assert "Idempotent-Replayed" not in paid.headers
    payment = paid.json()
    assert payment == {
        "id": payment["id"],
        "member_id": member_id,
        "kind": "payment",
        "amount_cents": 1_250,
        "balance_after_cents": 1_250,
        "created_at": payment["created_at"],
    }
    charged = await accounts.charge(member_id, 2_000)
    assert charged.status == 201
    assert charged.json()["kind"] == "charge"
    # A charge larger than the balance is allowed: the member now owes 7.50.
    assert charged.json()["balance_after_cents"] == -750
    assert (await accounts.balance(member_id))["balance_cents"] == -750


async def test_balance_always_equals_the_ledger(accounts: Accounts) -> None:
    member_id = await accounts.new_member()
    moves = [("pay", 500), ("charge", 120), ("pay", 75), ("charge", 900), ("pay", 1)]
    for kind, amount in moves:
        reply = await (accounts.pay if kind == "pay" else accounts.charge)(member_id, amount)
        assert reply.status == 201
    history = await accounts.history(member_id)
    paid = sum(t["amount_cents"] for t in history if t["kind"] == "payment")
    charged = sum(t["amount_cents"] for t in history if t["kind"] == "charge")
    balance = (await accounts.balance(member_id))["balance_cents"]
    assert balance == paid - charged == 500 - 120 + 75 - 900 + 1
    assert history[0]["balance_after_cents"] == balance
    summary = await accounts.call("GET", f"/members/{member_id}/summary", token=accounts.token(member_id))
    assert summary.json() | {"as_of": None} == {
        "member_id": member_id,
        "total_paid_cents": 576,
        "total_charged_cents": 1_020,
        "transactions_count": 5,
        "last_transaction_at": history[0]["created_at"],
        "as_of": None,
    }


async def test_concurrent_payments_of_one_member_all_count(accounts: Accounts) -> None:
    member_id = await accounts.new_member()
    replies = await asyncio.gather(*(accounts.pay(member_id, 100 + n) for n in range(20)))
    assert [r.status for r in replies] == [201] * 20
    total = sum(100 + n for n in range(20))
    assert (await accounts.balance(member_id))["balance_cents"] == total
    # Each payment saw the one before it: the running balances are all distinct.
    afters = sorted(r.json()["balance_after_cents"] for r in replies)
    assert len(set(afters)) == 20
    assert afters[-1] == total


async def test_a_retried_payment_replays_the_first_response_byte_for_byte(accounts: Accounts) -> None:
    member_id = await accounts.new_member()
    key = accounts.new_key()
    first = await accounts.pay(member_id, 4_200, key=key)
    # Same body with other key order and spacing is the same request.
    retry = await accounts.call(
        "POST",
        f"/members/{member_id}/payments",
        token=accounts.token(member_id),
        data=b'{ "currency": "USD",  "amount_cents": 4200 }',
        headers={"Idempotency-Key": key},
    )
    assert first.status == retry.status == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.body == first.body
    assert (await accounts.balance(member_id))["balance_cents"] == 4_200
    assert len(await accounts.history(member_id)) == 1


async def test_same_key_with_a_different_body_is_422(accounts: Accounts) -> None:
    member_id = await accounts.new_member()
    key = accounts.new_key()
    assert (await accounts.pay(member_id, 300, key=key)).status == 201
    reused = await accounts.pay(member_id, 301, key=key)
    assert reused.status == 422
    assert reused.headers["Content-Type"] == "application/problem+json"
    assert "already used for a different request" in reused.json()["detail"]
    assert (await accounts.balance(member_id))["balance_cents"] == 300


async def test_keys_are_scoped_to_the_member(accounts: Accounts) -> None:
    alice, bob = await accounts.new_member(), await accounts.new_member()
    key = accounts.new_key()
    for_alice = await accounts.pay(alice, 700, key=key)
    for_bob = await accounts.pay(bob, 700, key=key)
    assert for_alice.status == for_bob.status == 201
    assert "Idempotent-Replayed" not in for_bob.headers
    assert for_bob.json()["member_id"] == bob
    assert for_bob.json()["id"] != for_alice.json()["id"]
    assert (await accounts.balance(alice))["balance_cents"] == 700
    assert (await accounts.balance(bob))["balance_cents"] == 700


async def test_a_key_is_per_kind_and_never_replays_to_another_caller(accounts: Accounts) -> None:
    member_id = await accounts.new_member()
    key = accounts.new_key()
    assert (await accounts.pay(member_id, 900, key=key)).status == 201
    # The same key on the charges endpoint is a separate request.
    charged = await accounts.charge(member_id, 900, key=key)
    assert charged.status == 201
    assert "Idempotent-Replayed" not in charged.headers
    # Keys are scoped to the caller: an admin reusing the member's payment key
    # makes an independent payment and never gets the member's response.
    by_admin = await accounts.pay(member_id, 900, key=key, token=accounts.admin())
    assert by_admin.status == 201
    assert "Idempotent-Replayed" not in by_admin.headers
    assert (await accounts.balance(member_id))["balance_cents"] == 900
    assert len(await accounts.history(member_id)) == 3


async def test_fifty_concurrent_identical_payments_charge_once(accounts: Accounts) -> None:
    member_id = await accounts.new_member()
    key = accounts.new_key()
    replies = await asyncio.gather(*(accounts.pay(member_id, 2_500, key=key) for _ in range(50)))

    created = [r for r in replies if r.status == 201]
    originals = [r for r in created if "Idempotent-Replayed" not in r.headers]
    in_flight = [r for r in replies if r.status == 409]
    assert len(created) + len(in_flight) == 50, sorted(r.status for r in replies)
    assert len(originals) == 1
    assert {r.body for r in created} == {originals[0].body}
    assert all(r.headers["Idempotent-Replayed"] == "true" for r in created if r is not originals[0])
    for reply in in_flight:
        assert reply.headers["Retry-After"] == "1"
        assert "still being processed" in reply.json()["detail"]

    history = await accounts.history(member_id)
    assert len(history) == 1
    assert (await accounts.balance(member_id))["balance_cents"] == 2_500
    late_retry = await accounts.pay(member_id, 2_500, key=key)
    assert late_retry.status == 201
    assert late_retry.body == originals[0].body


async def test_members_pay_only_for_themselves_and_never_charge(accounts: Accounts) -> None:
    member_id = await accounts.new_member()
    other = await accounts.pay(member_id, 100, token=accounts.token(member_id + 1))
    assert other.status == 403
    self_charge = await accounts.call(
        "POST",
        f"/members/{member_id}/charges",
        token=accounts.token(member_id),
        payload={"amount_cents": 100, "currency": "USD"},
        headers={"Idempotency-Key": accounts.new_key()},
    )
    assert self_charge.status == 403
    assert "admin or an internal service" in self_charge.json()["detail"]
    by_service = await accounts.call(
        "POST",
        f"/members/{member_id}/charges",
        token=accounts.make_token("borrowing", "service"),
        payload={"amount_cents": 100, "currency": "USD"},
        headers={"Idempotency-Key": accounts.new_key()},
    )
    assert by_service.status == 201
    anonymous = await accounts.call(
        "POST",
        f"/members/{member_id}/payments",
        payload={"amount_cents": 100, "currency": "USD"},
        headers={"Idempotency-Key": accounts.new_key()},
    )
    assert anonymous.status == 401
    assert (await accounts.balance(member_id))["balance_cents"] == -100


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "Idempotency-Key header is required"),
        ({"Idempotency-Key": "short"}, "8 to 255 visible ASCII"),
        ({"Idempotency-Key": "x" * 256}, "8 to 255 visible ASCII"),
        ({"Idempotency-Key": "has a space"}, "8 to 255 visible ASCII"),
    ],
    ids=["missing", "too-short", "too-long", "space"],
)
async def test_missing_or_malformed_keys_are_400(
    accounts: Accounts, headers: dict[str, str], detail: str
) -> None:
    member_id = await accounts.new_member()
    reply = await accounts.call(
        "POST",
        f"/members/{member_id}/payments",
        token=accounts.token(member_id),
        payload={"amount_cents": 100, "currency": "USD"},
        headers=headers,
    )
    assert reply.status == 400
    assert detail in reply.json()["detail"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"amount_cents": 0, "currency": "USD"}, "Expected `int` >= 1 - at `$.amount_cents`"),
        ({"amount_cents": -500, "currency": "USD"}, "Expected `int` >= 1 - at `$.amount_cents`"),
        ({"amount_cents": 12.5, "currency": "USD"}, "Expected `int`, got `float`"),
        ({"amount_cents": "100", "currency": "USD"}, "Expected `int`, got `str`"),
        ({"amount_cents": 10_000_001, "currency": "USD"}, "<= 10000000"),
        ({"amount_cents": 100, "currency": "EUR"}, "at `$.currency`"),
        ({"amount_cents": 100}, "missing required field `currency`"),
        ({"amount_cents": 100, "currency": "USD", "note": "hi"}, "unknown field `note`"),
        ([100, "USD"], "Expected `object`, got `array`"),
    ],
    ids=["zero", "negative", "float", "string", "over-cap", "euro", "no-currency", "unknown", "array"],
)
async def test_invalid_amounts_are_422_and_move_nothing(accounts: Accounts, body: Any, detail: str) -> None:
    member_id = await accounts.new_member()
    reply: Reply = await accounts.call(
        "POST",
        f"/members/{member_id}/charges",
        token=accounts.admin(),
        payload=body,
        headers={"Idempotency-Key": accounts.new_key()},
    )
    assert reply.status == 422
    assert detail in reply.json()["detail"]
    assert (await accounts.balance(member_id))["balance_cents"] == 0


async def test_every_payment_and_charge_is_published_as_an_event_once(
    accounts: Accounts, system: Settings
) -> None:
    member_id = await accounts.new_member()
    key = accounts.new_key()
    paid = await accounts.pay(member_id, 1_500, key=key)
    assert (await accounts.pay(member_id, 1_500, key=key)).headers["Idempotent-Replayed"] == "true"
    charged = await accounts.charge(member_id, 400)
    assert system.redis_url is not None
    redis = aioredis.from_url(system.redis_url)
    try:
        mine: list[tuple[str, Any]] = []
        for _ in range(600):  # the service's relay publishes within a poll interval
            entries: Any = await redis.xrange("events:accounts")
            mine = [
                (fields[b"event_type"].decode(), json.loads(fields[b"payload"]))
                for _id, fields in entries
                if fields[b"aggregate_id"] == str(member_id).encode()
            ]
            if len(mine) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await redis.aclose()
    assert mine == [("payment.recorded", paid.json()), ("charge.recorded", charged.json())]
