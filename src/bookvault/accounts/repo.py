"""SQL of the accounts database, and the translation of its errors.

Every statement is parameterised. Timestamps come from the database's clock, the
one clock every ledger row agrees on. asyncpg errors stop here: callers see the
errors of `bookvault.accounts.errors` instead.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from bookvault.accounts.errors import EmailTaken, IdempotencyKeyInFlight, MemberNotFound

__all__ = ["AccountsRepo", "NewMovement", "Recorded"]

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

_FIND_BY_KEY = """
SELECT id, member_id, kind, amount_cents, balance_after_cents, created_at, request_fingerprint
  FROM transactions
 WHERE member_id = $1 AND kind = $2 AND idempotency_key = $3
"""

# Transaction-scoped, so a crashed or rolled-back request can never leave it held.
_CLAIM_KEY = "SELECT pg_try_advisory_xact_lock($1)"

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
RETURNING id, member_id, kind, amount_cents, balance_after_cents, created_at, request_fingerprint
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

_EMAIL_UNIQUE = "members_email_unique"
_KEY_UNIQUE = "transactions_idempotency_unique"


@dataclasses.dataclass(frozen=True, slots=True)
class NewMovement:
    """A payment or charge to append; `delta_cents` is its signed effect on the balance."""

    member_id: int
    kind: str
    amount_cents: int
    delta_cents: int
    currency: str
    idempotency_key: str
    fingerprint: str
    lock_id: int


@dataclasses.dataclass(frozen=True, slots=True)
class Recorded:
    """The ledger row stored under a key, and whether this call created it."""

    row: asyncpg.Record
    created: bool


class AccountsRepo:
    __slots__ = ("_pool",)

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

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

    async def record(self, movement: NewMovement) -> Recorded:
        """Append `movement` unless its key is taken; return the row stored under the key.

        A stored key is found without locking anything. Otherwise the key is
        claimed (advisory lock, so a concurrent duplicate gets 409 instead of
        queueing) and the unique constraint makes the claim final at commit.
        """
        async with self._pool.acquire() as conn:
            stored = await self._find_by_key(conn, movement)
            if stored is not None:
                return Recorded(stored, created=False)
            try:
                async with conn.transaction():
                    if not await conn.fetchval(_CLAIM_KEY, movement.lock_id):
                        raise IdempotencyKeyInFlight
                    row = await conn.fetchrow(
                        _APPEND,
                        movement.member_id,
                        movement.kind,
                        movement.delta_cents,
                        movement.amount_cents,
                        movement.currency,
                        movement.idempotency_key,
                        movement.fingerprint,
                    )
            except asyncpg.UniqueViolationError as exc:
                # The first request committed between our lookup and our claim.
                if exc.constraint_name != _KEY_UNIQUE:
                    raise
                stored = await self._find_by_key(conn, movement)
                if stored is None:  # a committed row cannot vanish from an append-only table
                    raise RuntimeError("idempotency key conflict without a stored row") from exc
                return Recorded(stored, created=False)
        if row is None:  # no balance row to move
            raise MemberNotFound(movement.member_id)
        return Recorded(row, created=True)

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

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    @staticmethod
    async def _find_by_key(conn: PoolConnectionProxy, movement: NewMovement) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await conn.fetchrow(
            _FIND_BY_KEY, movement.member_id, movement.kind, movement.idempotency_key
        )
        return row
