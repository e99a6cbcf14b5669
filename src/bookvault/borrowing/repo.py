"""Loans in PostgreSQL. Every state change is one conditional UPDATE
(`WHERE status = …`), so two requests racing on a loan cannot both win."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg

from bookvault.borrowing.model import Loan, LoanStatus
from bookvault.patterns.outbox import add_event

# The outbox topic of loan events; `loan.returned` carries the fee to charge.
LOANS_TOPIC = "loans"


def _loan(row: asyncpg.Record) -> Loan:
    # By name: `SELECT *` also carries bookkeeping columns (updated_at) the domain does not use.
    return Loan(
        id=row["id"],
        member_id=row["member_id"],
        book_id=row["book_id"],
        status=row["status"],
        reservation_id=row["reservation_id"],
        borrowed_at=row["borrowed_at"],
        due_at=row["due_at"],
        returned_at=row["returned_at"],
        fee_cents=row["fee_cents"],
        created_at=row["created_at"],
    )


def _returned_payload(loan: Loan) -> str:
    returned_at = loan.returned_at.isoformat() if loan.returned_at is not None else None
    return json.dumps(
        {
            "loan_id": loan.id,
            "member_id": loan.member_id,
            "book_id": loan.book_id,
            "returned_at": returned_at,
            "fee_cents": loan.fee_cents,
        }
    )


class _PgClaim:
    """A pending loan locked by the claim's open transaction."""

    __slots__ = ("_conn", "loan")

    def __init__(self, conn: asyncpg.pool.PoolConnectionProxy, loan: Loan) -> None:
        self._conn = conn
        self.loan = loan

    async def cancel(self) -> None:
        await self._conn.execute(
            "UPDATE loans SET status = 'cancelled', updated_at = now() WHERE id = $1 AND status = 'pending'",
            self.loan.id,
        )


class PgLoanStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create_pending(
        self, member_id: int, book_id: int, reservation_id: str, created_at: datetime
    ) -> Loan:
        row = await self._pool.fetchrow(
            """INSERT INTO loans (member_id, book_id, reservation_id, created_at, updated_at)
                VALUES ($1, $2, $3, $4, $4) RETURNING *""",
            member_id,
            book_id,
            reservation_id,
            created_at,
        )
        if row is None:  # INSERT … RETURNING always yields its row; this is a driver fault
            raise RuntimeError("INSERT INTO loans returned no row")
        return _loan(row)

    async def activate(self, loan_id: int, borrowed_at: datetime, due_at: datetime) -> Loan | None:
        row = await self._pool.fetchrow(
            """UPDATE loans SET status = 'active', borrowed_at = $2, due_at = $3, updated_at = now()
                WHERE id = $1 AND status = 'pending' RETURNING *""",
            loan_id,
            borrowed_at,
            due_at,
        )
        return None if row is None else _loan(row)

    async def cancel_pending(self, loan_id: int) -> bool:
        done: str = await self._pool.execute(
            "UPDATE loans SET status = 'cancelled', updated_at = now() WHERE id = $1 AND status = 'pending'",
            loan_id,
        )
        return done == "UPDATE 1"

    async def get(self, loan_id: int) -> Loan | None:
        row = await self._pool.fetchrow("SELECT * FROM loans WHERE id = $1", loan_id)
        return None if row is None else _loan(row)

    async def mark_returned(self, loan_id: int, returned_at: datetime, fee_cents: int) -> Loan | None:
        """Close the loan and, in the same transaction, write its `loan.returned`
        event to the outbox (the late-fee worker charges `fee_cents` from it)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """UPDATE loans SET status = 'returned', returned_at = $2, fee_cents = $3, updated_at = now()
                    WHERE id = $1 AND status = 'active' RETURNING *""",
                loan_id,
                returned_at,
                fee_cents,
            )
            if row is None:
                return None
            loan = _loan(row)
            await add_event(conn, LOANS_TOPIC, "loan.returned", str(loan.member_id), _returned_payload(loan))
        return loan

    async def list_for_member(
        self, member_id: int, statuses: tuple[LoanStatus, ...], limit: int
    ) -> list[Loan]:
        rows = await self._pool.fetch(
            """SELECT * FROM loans
                WHERE member_id = $1 AND status = ANY($2::text[])
                ORDER BY id DESC LIMIT $3""",
            member_id,
            list(statuses),
            limit,
        )
        return [_loan(row) for row in rows]

    async def stale_pending_ids(self, created_before: datetime, limit: int) -> list[int]:
        rows = await self._pool.fetch(
            """SELECT id FROM loans WHERE status = 'pending' AND created_at < $1
               ORDER BY created_at LIMIT $2""",
            created_before,
            limit,
        )
        return [row["id"] for row in rows]

    @contextlib.asynccontextmanager
    async def claim_pending(self, loan_id: int) -> AsyncIterator[_PgClaim | None]:
        # The row lock is held across the catalog call on purpose: a borrow request
        # activating this loan waits, then finds it cancelled instead of active
        # with a released copy. SKIP LOCKED lets two reconcilers share the work.
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """SELECT * FROM loans WHERE id = $1 AND status = 'pending'
                    FOR UPDATE SKIP LOCKED""",
                loan_id,
            )
            yield None if row is None else _PgClaim(conn, _loan(row))
