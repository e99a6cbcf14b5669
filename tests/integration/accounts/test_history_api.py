"""Ledger history: pages, time windows and balances as of a past instant."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

if TYPE_CHECKING:
    from tests.integration.accounts.conftest import Accounts

pytestmark = pytest.mark.stack


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _param(moment: datetime) -> str:
    return quote(moment.isoformat(), safe="")


async def _member_with_payments(accounts: Accounts, amounts: list[int]) -> tuple[int, list[Any]]:
    member_id = await accounts.new_member()
    made = []
    for amount in amounts:
        reply = await accounts.pay(member_id, amount)
        assert reply.status == 201
        made.append(reply.json())
    return member_id, made


async def test_pages_walk_the_ledger_newest_first_without_gaps(accounts: Accounts) -> None:
    member_id, made = await _member_with_payments(accounts, [100, 200, 300, 400, 500, 600, 700])
    seen: list[Any] = []
    cursor = ""
    pages = 0
    while True:
        reply = await accounts.call(
            "GET", f"/members/{member_id}/transactions?limit=3{cursor}", token=accounts.token(member_id)
        )
        assert reply.status == 200
        page = reply.json()
        pages += 1
        assert len(page["items"]) <= 3
        seen.extend(page["items"])
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert pages == 3
    assert seen == list(reversed(made))


async def test_from_and_to_select_a_window(accounts: Accounts) -> None:
    member_id, made = await _member_with_payments(accounts, [10, 20, 30, 40])
    start, end = _at(made[1]["created_at"]), _at(made[3]["created_at"])
    reply = await accounts.call(
        "GET",
        f"/members/{member_id}/transactions?from={_param(start)}&to={_param(end)}",
        token=accounts.admin(),
    )
    assert reply.status == 200
    # `from` is inclusive, `to` exclusive.
    assert [t["amount_cents"] for t in reply.json()["items"]] == [30, 20]


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("limit=0", "limit must be between 1 and 100"),
        ("limit=101", "limit must be between 1 and 100"),
        ("limit=ten", "limit must be an integer"),
        ("cursor=not-a-cursor", "cursor is not valid"),
        ("cursor=MTIzNDU", "cursor is not valid"),
        ("from=yesterday", "from must be an RFC 3339 timestamp"),
        ("to=2026-01-01T00:00:00", "to must carry a UTC offset"),
        ("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from must be earlier than to"),
        ("page=2", "unknown query parameter(s): page"),
    ],
)
async def test_bad_history_queries_are_400(accounts: Accounts, query: str, detail: str) -> None:
    member_id = await accounts.new_member()
    reply = await accounts.call("GET", f"/members/{member_id}/transactions?{query}", token=accounts.admin())
    assert reply.status == 400
    assert detail in reply.json()["detail"]


async def test_balance_as_of_a_past_instant_comes_from_the_ledger(accounts: Accounts) -> None:
    member_id, made = await _member_with_payments(accounts, [1_000, 250])
    charged = await accounts.charge(member_id, 400)
    assert charged.status == 201
    first, second, third = made[0], made[1], charged.json()
    tick = timedelta(microseconds=1)

    async def as_of(moment: datetime) -> Any:
        return await accounts.balance(member_id, f"?as_of={_param(moment)}")

    before = await as_of(_at(first["created_at"]) - tick)
    assert before["balance_cents"] == 0
    assert _at(before["as_of"]) == _at(first["created_at"]) - tick
    # "At or before": a transaction at exactly as_of counts.
    assert (await as_of(_at(first["created_at"])))["balance_cents"] == 1_000
    assert (await as_of(_at(second["created_at"])))["balance_cents"] == 1_250
    assert (await as_of(_at(third["created_at"]) - tick))["balance_cents"] == 1_250
    assert (await as_of(_at(third["created_at"])))["balance_cents"] == 850


async def test_balance_as_of_the_future_is_the_balance_now(accounts: Accounts) -> None:
    member_id, made = await _member_with_payments(accounts, [640])
    far = datetime.fromisoformat("2999-01-01T00:00:00+00:00")
    balance = await accounts.balance(member_id, f"?as_of={_param(far)}")
    assert balance["balance_cents"] == 640
    # The answer says when "now" was, not the requested future instant.
    assert _at(made[0]["created_at"]) <= _at(balance["as_of"]) < far


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("as_of=last-week", "as_of must be an RFC 3339 timestamp"),
        ("as_of=2026-01-01T00:00:00", "as_of must carry a UTC offset"),
        ("asof=2026-01-01T00:00:00Z", "unknown query parameter(s): asof"),
    ],
)
async def test_bad_as_of_is_400(accounts: Accounts, query: str, detail: str) -> None:
    member_id = await accounts.new_member()
    reply = await accounts.call("GET", f"/members/{member_id}/balance?{query}", token=accounts.admin())
    assert reply.status == 400
    assert detail in reply.json()["detail"]


async def test_summary_of_a_new_member_is_empty(accounts: Accounts) -> None:
    member_id = await accounts.new_member()
    reply = await accounts.call("GET", f"/members/{member_id}/summary", token=accounts.token(member_id))
    assert reply.status == 200
    summary = reply.json()
    assert summary["total_paid_cents"] == summary["total_charged_cents"] == 0
    assert summary["transactions_count"] == 0
    assert summary["last_transaction_at"] is None
