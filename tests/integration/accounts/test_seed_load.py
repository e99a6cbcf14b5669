"""`seed_members` against real PostgreSQL, in a database of its own so the
running service's members are left alone."""

from __future__ import annotations

import time

import asyncpg
import pytest

from bookvault.accounts.seed import seed_members
from bookvault.config import Settings, with_database
from bookvault.db.migrations import apply, ensure_database

pytestmark = pytest.mark.stack

SEED_DB = "accounts_seed_check"
COUNT = 10_000


@pytest.fixture(scope="module")
async def seed_dsn(infra: Settings) -> str:
    assert infra.database_url is not None
    await ensure_database(infra.database_url, SEED_DB)
    dsn = with_database(infra.database_url, SEED_DB)
    await apply(dsn, "accounts")
    return dsn


async def _fetchval(dsn: str, sql: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


_CONTENT = """
SELECT md5(string_agg(concat_ws('|', m.id, m.name, m.email, m.tier, m.created_at, b.balance_cents), ','
                      ORDER BY m.id))
  FROM members m JOIN balances b ON b.member_id = m.id
"""

# Members whose balance differs from their ledger (sum, and the latest balance_after).
_DRIFT = """
SELECT count(*)
  FROM balances b
  LEFT JOIN LATERAL (
        SELECT coalesce(sum(CASE WHEN kind = 'payment' THEN amount_cents ELSE -amount_cents END), 0) AS net,
               (SELECT balance_after_cents FROM transactions l WHERE l.member_id = b.member_id
                 ORDER BY created_at DESC, id DESC LIMIT 1) AS latest
          FROM transactions t WHERE t.member_id = b.member_id) ledger ON true
 WHERE b.balance_cents <> ledger.net OR b.balance_cents <> coalesce(ledger.latest, 0)
"""


async def test_seeding_loads_deterministic_members_quickly(seed_dsn: str) -> None:
    calls: list[tuple[int, int]] = []
    started = time.perf_counter()
    loaded = await seed_members(
        seed_dsn, COUNT, seed=42, progress=lambda done, total: calls.append((done, total))
    )
    elapsed = time.perf_counter() - started
    assert loaded == COUNT
    assert elapsed < 30, f"seeding {COUNT} members took {elapsed:.1f}s"
    assert calls[0] == (0, COUNT)
    assert calls[-1] == (COUNT, COUNT)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)

    assert await _fetchval(seed_dsn, "SELECT count(*) FROM members") == COUNT
    assert await _fetchval(seed_dsn, "SELECT min(id) = 1 AND max(id) = 10000 FROM members") is True
    assert await _fetchval(seed_dsn, "SELECT count(*) FROM members WHERE tier = 'vip'") == COUNT // 20
    assert await _fetchval(seed_dsn, "SELECT count(*) FROM balances") == COUNT
    assert await _fetchval(seed_dsn, "SELECT count(*) > 0 FROM transactions") is True
    assert await _fetchval(seed_dsn, _DRIFT) == 0


async def test_reseeding_replaces_everything_and_new_ids_follow(seed_dsn: str) -> None:
    await seed_members(seed_dsn, 500, seed=3, progress=lambda _d, _t: None)
    first = await _fetchval(seed_dsn, _CONTENT)
    conn = await asyncpg.connect(seed_dsn)
    try:
        extra = await conn.fetchval(
            "INSERT INTO members (name, email) VALUES ('Late Joiner', 'late@example.org') RETURNING id"
        )
        assert extra == 501
    finally:
        await conn.close()

    await seed_members(seed_dsn, 500, seed=3, progress=lambda _d, _t: None)
    assert await _fetchval(seed_dsn, _CONTENT) == first
    assert await _fetchval(seed_dsn, "SELECT count(*) FROM members WHERE email = 'late@example.org'") == 0
    assert await _fetchval(seed_dsn, "SELECT min(id) FROM transactions") == 1
    await seed_members(seed_dsn, 500, seed=4, progress=lambda _d, _t: None)
    assert await _fetchval(seed_dsn, _CONTENT) != first
