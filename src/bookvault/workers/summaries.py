"""Account events → the transaction summary read model (`member_summaries`).

Each `payment.recorded` / `charge.recorded` event adds its amount to the member's
row, in one transaction with the event id's inbox entry, so a redelivered event
changes nothing. The ledger stays the source of truth: the summary endpoint
answers from it; this model serves readers that accept a bounded staleness
(`updated_at`), and is checked against a replay of the ledger in the tests.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from bookvault.patterns.outbox import Delivery, PostgresInbox

__all__ = ["SUMMARIES_CONSUMER", "SummaryProjector"]

SUMMARIES_CONSUMER = "summaries"

_APPLY = """
INSERT INTO member_summaries AS s (member_id, total_paid_cents, total_charged_cents, transactions_count,
                                   last_transaction_at, updated_at)
VALUES ($1, $2, $3, 1, $4::text::timestamptz, now())
ON CONFLICT (member_id) DO UPDATE
   SET total_paid_cents = s.total_paid_cents + excluded.total_paid_cents,
       total_charged_cents = s.total_charged_cents + excluded.total_charged_cents,
       transactions_count = s.transactions_count + 1,
       last_transaction_at = greatest(s.last_transaction_at, excluded.last_transaction_at),
       updated_at = now()
"""


class SummaryProjector:
    """The `summaries` group's handler, on a pool of the accounts database."""

    __slots__ = ("_inbox", "_pool")

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._inbox = PostgresInbox(SUMMARIES_CONSUMER)

    async def __call__(self, delivery: Delivery) -> None:
        event = delivery.event
        if event.event_type not in ("payment.recorded", "charge.recorded"):
            return
        movement = json.loads(event.payload)
        amount = int(movement["amount_cents"])
        paid, charged = (amount, 0) if movement["kind"] == "payment" else (0, amount)
        async with self._pool.acquire() as conn, conn.transaction():
            if not await self._inbox.first_time(conn, event.event_id):
                return
            await conn.execute(_APPLY, int(movement["member_id"]), paid, charged, str(movement["created_at"]))

    async def forget_handled(self, older_than: timedelta, batch_size: int) -> int:
        """Delete at most `batch_size` inbox entries older than `older_than`."""
        async with self._pool.acquire() as conn:
            return await self._inbox.purge(conn, older_than, batch_size)
