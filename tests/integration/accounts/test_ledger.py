"""The partitioned, append-only ledger and the projections it rebuilds, on real
PostgreSQL: replay equals live, monthly partitions (pruned, created ahead,
catching stragglers in a default partition), and the migration that carried
the unpartitioned ledger over."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from bookvault.accounts.ledger import replay
from bookvault.accounts.repo import AccountsRepo
from bookvault.config import Settings, with_database
from bookvault.db.migrations import discover

if TYPE_CHECKING:
    from tests.integration.accounts.conftest import Accounts

pytestmark = pytest.mark.stack


@pytest.fixture
async def repo(system: Settings) -> AsyncIterator[AccountsRepo]:
    pool = await asyncpg.create_pool(system.service_database_url("accounts"), min_size=1, max_size=2)
    try:
        yield AccountsRepo(pool)
    finally:
        await pool.close()


@pytest.fixture
async def scratch(system: Settings) -> AsyncIterator[asyncpg.Connection]:
    """An empty database of its own, for migrations and partition maintenance."""
    name = f"accounts_scratch_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(system.service_database_url("accounts"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(with_database(system.service_database_url("accounts"), name))
    try:
        yield conn
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE "{name}"')
        await admin.close()


async def _migrate(conn: asyncpg.Connection, upto: int) -> None:
    for migration in discover("accounts"):
        if migration.version <= upto:
            async with conn.transaction():
                await conn.execute(migration.sql)


def _month_start(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def test_replaying_the_ledger_equals_the_live_balance_and_summary(
    accounts: Accounts, repo: AccountsRepo
) -> None:
    member_id = await accounts.new_member()
    for kind, amount in [("pay", 1_000), ("charge", 250), ("pay", 40), ("charge", 2_000), ("pay", 5)]:
        reply = await (accounts.pay if kind == "pay" else accounts.charge)(member_id, amount)
        assert reply.status == 201
    ledger = await repo.ledger(member_id)
    replayed = replay(ledger)
    balance = await accounts.balance(member_id)
    summary = (await accounts.call("GET", f"/members/{member_id}/summary", token=accounts.admin())).json()
    assert replayed.balance_cents == balance["balance_cents"] == 1_000 - 250 + 40 - 2_000 + 5
    assert replayed.total_paid_cents == summary["total_paid_cents"]
    assert replayed.total_charged_cents == summary["total_charged_cents"]
    assert replayed.transactions_count == summary["transactions_count"] == 5
    assert replayed.last_transaction_at is not None
    assert replayed.last_transaction_at.isoformat().replace("+00:00", "Z") == summary["last_transaction_at"]
    # As of any past instant, the live answer is the replay up to that instant.
    for event in ledger:
        as_of = event.created_at.isoformat().replace("+00:00", "Z")
        past = await accounts.balance(member_id, f"?as_of={as_of}")
        assert past["balance_cents"] == replay(ledger, upto=event.created_at).balance_cents


async def test_rebuilding_balances_from_the_ledger_changes_nothing(
    accounts: Accounts, repo: AccountsRepo
) -> None:
    member_id = await accounts.new_member()
    assert (await accounts.pay(member_id, 300)).status == 201
    assert (await accounts.charge(member_id, 700)).status == 201
    assert await repo.rebuild_balances() == []
    assert (await accounts.balance(member_id))["balance_cents"] == -400


async def test_a_month_bounded_query_reads_one_partition(accounts: Accounts, system: Settings) -> None:
    member_id = await accounts.new_member()
    assert (await accounts.pay(member_id, 100)).status == 201
    now = datetime.now(UTC)
    start = _month_start(now)
    end = _month_start(start + timedelta(days=32))
    conn = await asyncpg.connect(system.service_database_url("accounts"))
    try:
        plan = json.loads(
            await conn.fetchval(
                "EXPLAIN (FORMAT JSON) SELECT * FROM transactions "
                "WHERE member_id = $1 AND created_at >= $2 AND created_at < $3",
                member_id,
                start,
                end,
            )
        )
        partitions = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'transactions'::regclass"
        )
    finally:
        await conn.close()
    names = {r["relname"] for r in partitions}
    # Created ahead: this month and the next three exist, plus the default.
    for months in range(4):
        month = _month_start(start + timedelta(days=31 * months))
        assert f"transactions_{month:%Y_%m}" in names
    assert "transactions_default" in names
    assert _relations(plan) == {f"transactions_{start:%Y_%m}"}


def _relations(plan: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            found.add(plan["Relation Name"])
        for value in plan.values():
            found |= _relations(value)
    elif isinstance(plan, list):
        for item in plan:
            found |= _relations(item)
    return found


async def test_the_migration_carries_the_existing_ledger_over(scratch: asyncpg.Connection) -> None:
    await _migrate(scratch, upto=2)
    member = await scratch.fetchval(
        "INSERT INTO members (name, email) VALUES ('Old Timer', 'old@example.org') RETURNING id"
    )
    await scratch.execute("INSERT INTO balances (member_id, balance_cents) VALUES ($1, 150)", member)
    rows = [
        ("payment", 500, 500, datetime(2024, 3, 5, 12, tzinfo=UTC)),
        ("charge", 200, 300, datetime(2025, 7, 31, 23, 59, 59, tzinfo=UTC)),
        ("charge", 150, 150, datetime.now(UTC) - timedelta(minutes=1)),
    ]
    for kind, amount, after, at in rows:
        await scratch.execute(
            "INSERT INTO transactions (member_id, kind, amount_cents, currency, balance_after_cents, "
            "created_at, idempotency_key, request_fingerprint) "
            "VALUES ($1, $2, $3, 'USD', $4, $5, 'k-12345678', 'f')",
            member,
            kind,
            amount,
            after,
            at,
        )
    before = await scratch.fetch("SELECT * FROM transactions ORDER BY id")

    await _migrate_from(scratch, 3)

    migrated = await scratch.fetch("SELECT * FROM transactions ORDER BY id")
    assert [dict(r) for r in migrated] == [dict(r) for r in before]
    where = await scratch.fetch("SELECT tableoid::regclass::text AS part FROM transactions ORDER BY id")
    assert [r["part"] for r in where] == [
        "transactions_2024_03",
        "transactions_2025_07",
        f"transactions_{datetime.now(UTC):%Y_%m}",
    ]
    new_id = await scratch.fetchval(
        "INSERT INTO transactions (member_id, kind, amount_cents, currency, balance_after_cents) "
        "VALUES ($1, 'payment', 1, 'USD', 151) RETURNING id",
        member,
    )
    assert new_id > max(r["id"] for r in before)
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await scratch.execute("UPDATE transactions SET amount_cents = 1 WHERE id = $1", before[0]["id"])


async def _migrate_from(conn: asyncpg.Connection, version: int) -> None:
    for migration in discover("accounts"):
        if migration.version >= version:
            async with conn.transaction():
                await conn.execute(migration.sql)


async def test_rows_beyond_the_partitions_land_in_the_default_and_move_when_their_month_is_created(
    scratch: asyncpg.Connection,
) -> None:
    await _migrate(scratch, upto=99)
    member = await scratch.fetchval(
        "INSERT INTO members (name, email) VALUES ('Far Future', 'future@example.org') RETURNING id"
    )
    far = datetime.now(UTC) + timedelta(days=365 * 2)
    row_id = await scratch.fetchval(
        "INSERT INTO transactions (member_id, kind, amount_cents, currency, balance_after_cents, created_at) "
        "VALUES ($1, 'payment', 99, 'USD', 99, $2) RETURNING id",
        member,
        far,
    )
    assert await scratch.fetchval(
        "SELECT tableoid::regclass::text FROM transactions WHERE id = $1", row_id
    ) == ("transactions_default")
    assert await scratch.fetchval("SELECT ensure_transaction_partitions(3)") == 0
    created = await scratch.fetchval("SELECT ensure_transaction_partitions(30)")
    assert created >= 20
    moved = await scratch.fetchrow(
        "SELECT tableoid::regclass::text AS part, amount_cents, created_at FROM transactions WHERE id = $1",
        row_id,
    )
    assert moved is not None
    assert moved["part"] == f"transactions_{far:%Y_%m}"
    assert (moved["amount_cents"], moved["created_at"]) == (99, far)
    assert await scratch.fetchval("SELECT count(*) FROM transactions_default") == 0
    # The default partition is append-only again after the move.
    await scratch.execute(
        "INSERT INTO transactions (member_id, kind, amount_cents, currency, balance_after_cents, created_at) "
        "VALUES ($1, 'payment', 1, 'USD', 100, $2)",
        member,
        datetime.now(UTC) + timedelta(days=365 * 5),
    )
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await scratch.execute("DELETE FROM transactions_default")
