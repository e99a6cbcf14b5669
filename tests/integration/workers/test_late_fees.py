"""Loan returned → late fee charged to the member's account, exactly once: a real
worker process started by the stack's WorkerPool, fed by the borrowing outbox
through Redis Streams, charging through the accounts API (all real)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from bookvault.config import Settings
from bookvault.workers import LATE_FEES, charge_key, group_lag

pytestmark = pytest.mark.stack
MakeToken = Callable[..., str]
# Effects arrive asynchronously; a poll gives up after this many rounds of 0.1 s.
_POLLS = 300


@pytest.fixture
async def borrowing_db(system: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(system.service_database_url("borrowing"))
    try:
        yield conn
    finally:
        await conn.close()


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, token: str, body: Any = None
) -> tuple[int, Any]:
    async with session.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.json()


def _isbn13() -> str:
    digits = f"978{random.randrange(10**9):09d}"
    weighted = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return digits + str(-weighted % 10)


async def _charges(session: aiohttp.ClientSession, accounts: str, admin: str, member_id: int) -> list[Any]:
    status, page = await _call(
        session, "GET", f"{accounts}/members/{member_id}/transactions?limit=100", admin
    )
    assert status == 200, page
    return [t for t in page["items"] if t["kind"] == "charge"]


async def _drained(conn: asyncpg.Connection, redis: Any) -> bool:
    """The borrowing outbox is empty and the late-fee group has handled every message."""
    unpublished = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    lag = group_lag(await redis.xinfo_groups(LATE_FEES.stream), LATE_FEES.group)
    return unpublished == 0 and lag is not None and sum(lag) == 0


async def _borrowed_book(
    system: Settings, make_token: MakeToken, http: aiohttp.ClientSession, name: str, title: str
) -> tuple[str, str, str, Any, str, Any]:
    """A new member who has just borrowed a new book: the admin token, the accounts
    and borrowing API bases, the member, the member's token and the loan."""
    admin = make_token("1", "admin")
    accounts = f"{system.service_url('accounts')}/api/accounts/v1"
    borrowing = f"{system.service_url('borrowing')}/api/borrowing/v1"
    status, member = await _call(
        http, "POST", f"{accounts}/members", admin, {"name": name, "email": f"{uuid.uuid4()}@x.org"}
    )
    assert status == 201, member
    reader = make_token(str(member["id"]))
    status, book = await _call(
        http,
        "POST",
        f"{system.service_url('catalog')}/api/catalog/v1/books",
        admin,
        {
            "isbn": _isbn13(),
            "title": title,
            "author": "Ada Late",
            "genre": "Fiction",
            "published_year": 2001,
            "total_copies": 1,
        },
    )
    assert status == 201, book
    status, loan = await _call(http, "POST", f"{borrowing}/loans", reader, {"book_id": book["id"]})
    assert status == 201, loan
    return admin, accounts, borrowing, member, reader, loan


@pytest.mark.usefixtures("worker")
async def test_a_late_return_charges_the_fee_once_even_when_the_event_is_delivered_again(
    system: Settings,
    make_token: MakeToken,
    http: aiohttp.ClientSession,
    borrowing_db: asyncpg.Connection,
    redis: Any,
) -> None:
    admin, accounts, borrowing, member, reader, loan = await _borrowed_book(
        system, make_token, http, "Late Reader", "Overdue"
    )
    # Borrowed long enough ago to be two started days late.
    aged = timedelta(days=system.loan_days + 1, hours=1)
    await borrowing_db.execute(
        "UPDATE loans SET borrowed_at = borrowed_at - $2::interval, due_at = due_at - $2::interval "
        "WHERE id = $1",
        loan["id"],
        aged,
    )
    status, returned = await _call(http, "POST", f"{borrowing}/loans/{loan['id']}/return", reader)
    assert status == 200, returned
    fee = returned["fee_cents"]
    assert fee == 2 * system.late_fee_cents_per_day

    charges: list[Any] = []
    for _ in range(_POLLS):
        charges = await _charges(http, accounts, admin, member["id"])
        if charges:
            break
        await asyncio.sleep(0.1)
    assert [c["amount_cents"] for c in charges] == [fee]
    status, balance = await _call(http, "GET", f"{accounts}/members/{member['id']}/balance", admin)
    assert balance["balance_cents"] == -fee

    # A relay that dies after publishing and before marking publishes the event
    # again: the worker handles it again, and accounts replays the charge.
    event_id = await borrowing_db.fetchval(
        "SELECT event_id::text FROM outbox WHERE event_type = 'loan.returned' AND payload->>'loan_id' = $1",
        str(loan["id"]),
    )
    assert event_id is not None
    await borrowing_db.execute("UPDATE outbox SET published_at = NULL WHERE event_id = $1::uuid", event_id)
    for _ in range(_POLLS):
        if await _drained(borrowing_db, redis):
            break
        await asyncio.sleep(0.1)
    assert await _drained(borrowing_db, redis)
    entries = await redis.xrange(LATE_FEES.stream)
    assert sum(1 for _id, fields in entries if fields[b"event_id"].decode() == event_id) == 2
    assert [c["amount_cents"] for c in await _charges(http, accounts, admin, member["id"])] == [fee]
    status, balance = await _call(http, "GET", f"{accounts}/members/{member['id']}/balance", admin)
    assert balance["balance_cents"] == -fee

    # The charge is keyed by the event: the same key again is a replay, not a new charge.
    async with http.post(
        f"{accounts}/members/{member['id']}/charges",
        json={"amount_cents": fee, "currency": "USD"},
        headers={
            "Authorization": f"Bearer {make_token('workers', 'service')}",
            "Idempotency-Key": charge_key(event_id),
        },
    ) as resp:
        assert resp.status == 201
        assert resp.headers["Idempotent-Replayed"] == "true"


@pytest.mark.usefixtures("worker")
async def test_an_on_time_return_charges_nothing(
    system: Settings,
    make_token: MakeToken,
    http: aiohttp.ClientSession,
    borrowing_db: asyncpg.Connection,
    redis: Any,
) -> None:
    admin, accounts, borrowing, member, reader, loan = await _borrowed_book(
        system, make_token, http, "On Time", "Prompt"
    )
    status, returned = await _call(http, "POST", f"{borrowing}/loans/{loan['id']}/return", reader)
    assert status == 200
    assert returned["fee_cents"] == 0
    for _ in range(_POLLS):
        if await _drained(borrowing_db, redis):
            break
        await asyncio.sleep(0.1)
    assert await _drained(borrowing_db, redis)  # the event was handled...
    assert await _charges(http, accounts, admin, member["id"]) == []  # ...and charged nothing
