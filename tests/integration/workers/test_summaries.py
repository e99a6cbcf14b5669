"""Account events → the transaction summary read model, through the accounts
outbox, Redis Streams and a supervised worker: it converges on what the ledger
says (replay equals live), and an event delivered twice counts once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest

from bookvault.accounts.ledger import replay
from bookvault.accounts.repo import AccountsRepo
from bookvault.config import Settings
from bookvault.workers import SUMMARIES, group_lag

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]
_POLLS = 300
MakeToken = Callable[..., str]


@pytest.fixture
async def accounts_pool(system: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(system.service_database_url("accounts"), min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


async def _model(pool: asyncpg.Pool, member_id: int) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        "SELECT total_paid_cents, total_charged_cents, transactions_count, last_transaction_at "
        "FROM member_summaries WHERE member_id = $1",
        member_id,
    )
    return None if row is None else dict(row)


async def _drained(pool: asyncpg.Pool, redis: Any, member_id: int) -> bool:
    unpublished = await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE published_at IS NULL AND aggregate_id = $1", str(member_id)
    )
    lag = group_lag(await redis.xinfo_groups(SUMMARIES.stream), SUMMARIES.group)
    return unpublished == 0 and lag is not None and sum(lag) == 0


async def _call(http: aiohttp.ClientSession, method: str, url: str, token: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    async with http.request(method, url, headers=headers, **kwargs) as resp:
        assert resp.status in (200, 201), await resp.text()
        return await resp.json()


async def test_the_read_model_converges_on_the_ledger_and_counts_a_redelivery_once(
    system: Settings,
    make_token: MakeToken,
    http: aiohttp.ClientSession,
    accounts_pool: asyncpg.Pool,
    redis: Any,
) -> None:
    admin = make_token("1", "admin")
    base = f"{system.service_url('accounts')}/api/accounts/v1"
    member = await _call(
        http, "POST", f"{base}/members", admin, json={"name": "Summed Up", "email": f"{uuid.uuid4()}@x.org"}
    )
    member_id = member["id"]
    for kind, amount in [("payments", 1_000), ("charges", 250), ("payments", 40)]:
        await _call(
            http,
            "POST",
            f"{base}/members/{member_id}/{kind}",
            admin,
            json={"amount_cents": amount, "currency": "USD"},
            headers={"Idempotency-Key": f"key-{uuid.uuid4()}"},
        )
    model = None
    for _ in range(_POLLS):
        model = await _model(accounts_pool, member_id)
        if model is not None and model["transactions_count"] == 3:
            break
        await asyncio.sleep(0.1)
    replayed = replay(await AccountsRepo(accounts_pool).ledger(member_id))
    expected = {
        "total_paid_cents": replayed.total_paid_cents,
        "total_charged_cents": replayed.total_charged_cents,
        "transactions_count": replayed.transactions_count,
        "last_transaction_at": replayed.last_transaction_at,
    }
    assert model == expected == {**expected, "total_paid_cents": 1_040, "total_charged_cents": 250}
    live = await _call(http, "GET", f"{base}/members/{member_id}/summary", admin)
    assert (live["total_paid_cents"], live["transactions_count"]) == (1_040, 3)

    # Every event of the member published again, as after a relay crash: no change.
    await accounts_pool.execute(
        "UPDATE outbox SET published_at = NULL WHERE aggregate_id = $1", str(member_id)
    )
    for _ in range(_POLLS):
        if await _drained(accounts_pool, redis, member_id):
            break
        await asyncio.sleep(0.1)
    assert await _drained(accounts_pool, redis, member_id)
    assert await _model(accounts_pool, member_id) == expected
