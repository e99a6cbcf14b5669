"""Idempotency keys of payments and charges, against the running accounts
service and its real PostgreSQL: stored error outcomes, the in-flight 409 while
the first request's transaction is open, a crashed request's lock, and expiry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING

import asyncpg
import pytest

from bookvault.accounts.service import movement_scope
from bookvault.auth import Principal
from bookvault.config import Settings
from bookvault.patterns.idempotency import PostgresIdempotencyStore, sweep_expired

if TYPE_CHECKING:
    from tests.integration.accounts.conftest import Accounts

pytestmark = pytest.mark.stack

_MISSING_MEMBER = 9_000_000_000


@pytest.fixture
async def db(system: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(system.service_database_url("accounts"))
    try:
        yield conn
    finally:
        await conn.close()


async def test_a_completed_404_is_stored_and_replayed_byte_for_byte(accounts: Accounts) -> None:
    key = accounts.new_key()
    first = await accounts.pay(_MISSING_MEMBER, 100, key=key, token=accounts.admin())
    assert first.status == 404
    assert first.headers["Content-Type"] == "application/problem+json"
    assert "Idempotent-Replayed" not in first.headers
    again = await accounts.pay(_MISSING_MEMBER, 100, key=key, token=accounts.admin())
    assert again.status == 404
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Content-Type"] == "application/problem+json"
    assert again.body == first.body
    other_body = await accounts.pay(_MISSING_MEMBER, 101, key=key, token=accounts.admin())
    assert other_body.status == 422


async def test_a_repeat_while_the_first_transaction_is_open_is_409_then_proceeds(
    accounts: Accounts, db: asyncpg.Connection
) -> None:
    member_id = await accounts.new_member()
    key = accounts.new_key()
    scope = movement_scope(Principal(str(member_id), "member"), member_id, "payment", key)
    # Hold the claim exactly as a first request in flight does: its transaction open.
    holding = db.transaction()
    await holding.start()
    assert await PostgresIdempotencyStore(db).try_lock(scope, timedelta(seconds=30))
    try:
        blocked = await accounts.pay(member_id, 500, key=key)
        assert blocked.status == 409
        assert blocked.headers["Retry-After"] == "1"
        assert "still being processed" in blocked.json()["detail"]
        # Another caller's identical key is not blocked: it is another scope.
        by_admin = await accounts.pay(member_id, 500, key=key, token=accounts.admin())
        assert by_admin.status == 201
    finally:
        await holding.rollback()
    # The first request ended without storing anything: the retry runs for real.
    retried = await accounts.pay(member_id, 500, key=key)
    assert retried.status == 201
    assert "Idempotent-Replayed" not in retried.headers
    assert (await accounts.balance(member_id))["balance_cents"] == 1_000


async def test_a_crashed_requests_lock_is_released_so_a_retry_proceeds(
    accounts: Accounts, system: Settings
) -> None:
    member_id = await accounts.new_member()
    key = accounts.new_key()
    scope = movement_scope(Principal(str(member_id), "member"), member_id, "payment", key)
    crashed = await asyncpg.connect(system.service_database_url("accounts"))
    pid = crashed.get_server_pid()
    await crashed.execute("BEGIN")
    assert await PostgresIdempotencyStore(crashed).try_lock(scope, timedelta(seconds=30))
    assert (await accounts.pay(member_id, 700, key=key)).status == 409
    crashed.terminate()  # the socket closes with the transaction open, as when a process dies
    observer = await asyncpg.connect(system.service_database_url("accounts"))
    try:
        # Waits (up to 10 s) until the dead client's backend has exited, if it still exists.
        await observer.execute("SELECT pg_terminate_backend($1, 10000)", pid)
        assert not await observer.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
    finally:
        await observer.close()
    retried = await accounts.pay(member_id, 700, key=key)
    assert retried.status == 201
    assert (await accounts.balance(member_id))["balance_cents"] == 700


async def test_the_lock_is_bounded_by_the_idle_in_transaction_timeout(db: asyncpg.Connection) -> None:
    scope = movement_scope(Principal("5", "member"), 5, "payment", "key-timeout-check")
    async with db.transaction():
        await PostgresIdempotencyStore(db).try_lock(scope, timedelta(seconds=2))
        assert await db.fetchval("SHOW idle_in_transaction_session_timeout") == "2s"
    # SET LOCAL: the session's own setting is back once the transaction ends.
    assert await db.fetchval("SHOW idle_in_transaction_session_timeout") != "2s"


async def test_expired_keys_stop_replaying_and_are_swept_in_bounded_batches(
    accounts: Accounts, db: asyncpg.Connection
) -> None:
    member_id = await accounts.new_member()
    keys = [accounts.new_key() for _ in range(3)]
    for key in keys:
        assert (await accounts.pay(member_id, 100, key=key)).status == 201
    # Age the member's keys past their 24 h.
    await db.execute(
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE path = $1",
        f"/api/accounts/v1/members/{member_id}/payments",
    )
    # An expired key is a new request: the payment happens again, and is stored anew.
    again = await accounts.pay(member_id, 100, key=keys[0])
    assert again.status == 201
    assert "Idempotent-Replayed" not in again.headers
    assert (await accounts.pay(member_id, 100, key=keys[0])).headers["Idempotent-Replayed"] == "true"
    assert (await accounts.balance(member_id))["balance_cents"] == 400

    swept = 0
    while batch := await sweep_expired(db, batch_size=1):
        assert batch == 1
        swept += 1
    assert swept >= 2
    left = await db.fetchval(
        "SELECT count(*) FROM idempotency_keys WHERE path = $1",
        f"/api/accounts/v1/members/{member_id}/payments",
    )
    assert left == 1


async def test_a_retry_is_replayed_from_redis_once_the_database_has_answered_one(
    accounts: Accounts, db: asyncpg.Connection
) -> None:
    member_id = await accounts.new_member()
    key = accounts.new_key()
    first = await accounts.pay(member_id, 640, key=key)
    assert (await accounts.pay(member_id, 640, key=key)).headers["Idempotent-Replayed"] == "true"
    # The database's copy gone: the next retry can only have come from Redis.
    await db.execute(
        "DELETE FROM idempotency_keys WHERE idempotency_key = $1 AND path = $2",
        key,
        f"/api/accounts/v1/members/{member_id}/payments",
    )
    from_redis = await accounts.pay(member_id, 640, key=key)
    assert from_redis.status == 201
    assert from_redis.headers["Idempotent-Replayed"] == "true"
    assert from_redis.body == first.body
    # The fast path checks the request too: another body is still 422.
    assert (await accounts.pay(member_id, 641, key=key)).status == 422
    assert (await accounts.balance(member_id))["balance_cents"] == 640
