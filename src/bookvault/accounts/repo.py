"""SQL of the accounts database, and the translation of its errors.

Every statement is parameterised. Timestamps come from the database's clock, the
one clock every ledger row agrees on. asyncpg errors stop here: callers see the
errors of `bookvault.accounts.errors` instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg

from bookvault.accounts.errors import EmailTaken
from bookvault.accounts.ledger import LedgerEvent
from bookvault.patterns.idempotency import (
    Idempotency,
    Outcome,
    PostgresIdempotencyStore,
    RedisReplayCache,
    Scope,
    StoredResponse,
    sweep_expired,
)
from bookvault.patterns.outbox import add_event, lock_aggregate, purge_published

__all__ = ["EVENTS_TOPIC", "AccountsRepo", "NewMovement"]

# The outbox topic of account events (`payment.recorded`, `charge.recorded`,
# payload: the transaction as the API returns it).
EVENTS_TOPIC = "accounts"

_CREATE_MEMBER = """
WITH member AS (
    INSERT INTO members (name, email, tier) VALUES ($1, $2, $3)
    RETURNING id, name, email, tier, created_at
), opened AS (
    INSERT INTO balances (member_id, updated_at) SELECT id, created_at FROM member
)
SELECT id, name, email, tier, created_at FROM member
"""

_GET_MEMBER = "SELECT id, name, email, tier, created_at FROM members WHERE id = $1"

_CURRENT_BALANCE = """
SELECT member_id, balance_cents, currency, now() AS as_of FROM balances WHERE member_id = $1
"""

# A time not yet reached is answered with the current balance, as of now: the
# future ledger is unknown, and a client clock slightly ahead should not fail.
_BALANCE_AS_OF = """
SELECT b.member_id,
       CASE WHEN $2 >= now() THEN b.balance_cents
            ELSE coalesce((SELECT t.balance_after_cents
                             FROM transactions t
                            WHERE t.member_id = b.member_id AND t.created_at <= $2
                            ORDER BY t.created_at DESC, t.id DESC
                            LIMIT 1), 0)
       END AS balance_cents,
       b.currency,
       least($2, now()) AS as_of
  FROM balances b
 WHERE b.member_id = $1
"""

# Locks the member's balance row, moves it and appends the ledger row in one
# statement. created_at never goes below the previous row's (kept in updated_at),
# so per member, time order is balance order even if the clock steps back.
_APPEND = """
WITH moved AS (
    UPDATE balances
       SET balance_cents = balance_cents + $3,
           updated_at = greatest(clock_timestamp(), updated_at)
     WHERE member_id = $1
 RETURNING balance_cents, updated_at
)
INSERT INTO transactions (member_id, kind, amount_cents, currency, balance_after_cents, created_at,
                          idempotency_key, request_fingerprint)
SELECT $1, $2, $4, $5, moved.balance_cents, moved.updated_at, $6, $7 FROM moved
RETURNING id, member_id, kind, amount_cents, balance_after_cents, created_at
"""

# Missing bounds become infinities so every condition stays usable by the
# (member_id, created_at DESC, id DESC) index, whatever plan is cached.
_PAGE = """
SELECT id, member_id, kind, amount_cents, balance_after_cents, created_at
  FROM transactions
 WHERE member_id = $1
   AND created_at >= coalesce($2::timestamptz, '-infinity')
   AND created_at < coalesce($3::timestamptz, 'infinity')
   AND (created_at, id) < (coalesce($4::timestamptz, 'infinity'), coalesce($5::bigint, 9223372036854775807))
 ORDER BY created_at DESC, id DESC
 LIMIT $6
"""

_MEMBER_EXISTS = "SELECT EXISTS (SELECT 1 FROM members WHERE id = $1)"

_SUMMARY = """
SELECT m.id AS member_id,
       coalesce(sum(t.amount_cents) FILTER (WHERE t.kind = 'payment'), 0)::bigint AS total_paid_cents,
       coalesce(sum(t.amount_cents) FILTER (WHERE t.kind = 'charge'), 0)::bigint AS total_charged_cents,
       count(t.id) AS transactions_count,
       max(t.created_at) AS last_transaction_at,
       now() AS as_of
  FROM members m
  LEFT JOIN transactions t ON t.member_id = m.id
 WHERE m.id = $1
 GROUP BY m.id
"""

_LEDGER = """
SELECT kind, amount_cents, balance_after_cents, created_at
  FROM transactions
 WHERE member_id = $1
 ORDER BY created_at, id
"""

# Every stored balance set to what the ledger says; returns the rows that differed.
_REBUILD_BALANCES = """
WITH replayed AS (
    SELECT b.member_id,
           coalesce(sum(CASE t.kind WHEN 'payment' THEN t.amount_cents ELSE -t.amount_cents END), 0)::bigint
               AS balance_cents
      FROM balances b
      LEFT JOIN transactions t ON t.member_id = b.member_id
     GROUP BY b.member_id
)
UPDATE balances b
   SET balance_cents = r.balance_cents
  FROM replayed r
 WHERE b.member_id = r.member_id AND b.balance_cents <> r.balance_cents
RETURNING b.member_id
"""

_EMAIL_UNIQUE = "members_email_unique"


@dataclasses.dataclass(frozen=True, slots=True)
class NewMovement:
    """A payment or charge to append; `delta_cents` is its signed effect on the balance."""

    member_id: int
    kind: str
    amount_cents: int
    delta_cents: int
    currency: str
    scope: Scope
    fingerprint: str


class AccountsRepo:
    __slots__ = ("_pool", "_replays")

    def __init__(self, pool: asyncpg.Pool, replays: RedisReplayCache | None = None) -> None:
        self._pool = pool
        # The fast path for retries: completed outcomes replayed from Redis.
        self._replays = replays

    async def create_member(self, name: str, email: str, tier: str) -> asyncpg.Record:
        try:
            row: asyncpg.Record | None = await self._pool.fetchrow(_CREATE_MEMBER, name, email, tier)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == _EMAIL_UNIQUE:
                raise EmailTaken from exc
            raise
        if row is None:  # INSERT ... RETURNING always yields the row
            raise RuntimeError("creating a member returned no row")
        return row

    async def member(self, member_id: int) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._pool.fetchrow(_GET_MEMBER, member_id)
        return row

    async def balance(self, member_id: int, as_of: datetime | None) -> asyncpg.Record | None:
        row: asyncpg.Record | None
        if as_of is None:
            row = await self._pool.fetchrow(_CURRENT_BALANCE, member_id)
        else:
            row = await self._pool.fetchrow(_BALANCE_AS_OF, member_id, as_of)
        return row

    async def record_once(
        self,
        guard: Idempotency,
        movement: NewMovement,
        render: Callable[[asyncpg.Record | None], StoredResponse],
    ) -> Outcome:
        """Append `movement` at most once per idempotency scope.

        A completed key is replayed without taking any lock: from Redis when it
        is there (no database round trip), else from the database, which then
        puts it in Redis for the next retry. Otherwise the key is
        claimed, the balance moved, the ledger row appended and the rendered
        response stored, all in one transaction; `render` gets the new row, or
        None when the member does not exist (an outcome stored like any other).
        """
        if self._replays is not None:
            cached = guard.replay(await self._replays.get(movement.scope), movement.fingerprint)
            if cached is not None:
                return cached
        async with self._pool.acquire() as conn:
            store = PostgresIdempotencyStore(conn)
            stored = await store.find(movement.scope)
            replayed = guard.replay(stored, movement.fingerprint)
            if replayed is not None:
                if self._replays is not None and stored is not None and stored.expires_in is not None:
                    await self._replays.put(movement.scope, stored, stored.expires_in)
                return replayed

            async def append() -> StoredResponse:
                # Before the first write: per member, transaction ids then follow
                # commit order, and so does the outbox relay.
                await lock_aggregate(conn, "member", str(movement.member_id))
                row: asyncpg.Record | None = await conn.fetchrow(
                    _APPEND,
                    movement.member_id,
                    movement.kind,
                    movement.delta_cents,
                    movement.amount_cents,
                    movement.currency,
                    movement.scope.key,
                    movement.fingerprint,
                )
                response = render(row)
                if row is not None:
                    await add_event(
                        conn,
                        EVENTS_TOPIC,
                        f"{movement.kind}.recorded",
                        str(movement.member_id),
                        response.body.decode(),
                    )
                return response

            async with conn.transaction():
                return await guard.run(store, movement.scope, movement.fingerprint, append)

    async def purge_outbox(self, older_than: timedelta, batch_size: int) -> int:
        """Delete at most `batch_size` outbox rows published more than `older_than` ago."""
        async with self._pool.acquire() as conn:
            return await purge_published(conn, older_than, batch_size)

    async def ensure_partitions(self, months_ahead: int) -> int:
        """Create the ledger's missing monthly partitions up to `months_ahead`; return how many."""
        created: int = await self._pool.fetchval("SELECT ensure_transaction_partitions($1)", months_ahead)
        return created

    async def sweep_idempotency_keys(self, batch_size: int) -> int:
        """Delete at most `batch_size` expired idempotency keys; return how many."""
        async with self._pool.acquire() as conn:
            return await sweep_expired(conn, batch_size)

    async def transactions(
        self,
        member_id: int,
        *,
        start: datetime | None,
        end: datetime | None,
        before: tuple[datetime, int] | None,
        limit: int,
    ) -> list[asyncpg.Record]:
        """Newest first: rows in [start, end) strictly older than `before` (created_at, id)."""
        before_at, before_id = before if before is not None else (None, None)
        rows: list[asyncpg.Record] = await self._pool.fetch(
            _PAGE, member_id, start, end, before_at, before_id, limit
        )
        return rows

    async def member_exists(self, member_id: int) -> bool:
        return bool(await self._pool.fetchval(_MEMBER_EXISTS, member_id))

    async def summary(self, member_id: int) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._pool.fetchrow(_SUMMARY, member_id)
        return row

    async def ledger(self, member_id: int) -> list[LedgerEvent]:
        """The member's whole ledger, oldest first."""
        rows = await self._pool.fetch(_LEDGER, member_id)
        return [
            LedgerEvent(r["kind"], r["amount_cents"], r["balance_after_cents"], r["created_at"]) for r in rows
        ]

    async def rebuild_balances(self) -> list[int]:
        """Rewrite every stored balance from the ledger; return the members whose
        stored balance had drifted (none, while the invariant holds)."""
        async with self._pool.acquire() as conn, conn.transaction():
            # Writers lock balance rows; this waits for them and keeps new ones out meanwhile.
            await conn.execute("LOCK TABLE balances IN SHARE ROW EXCLUSIVE MODE")
            rows = await conn.fetch(_REBUILD_BALANCES)
        return [r["member_id"] for r in rows]

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")
