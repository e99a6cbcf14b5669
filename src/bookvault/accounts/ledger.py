"""The ledger as an event log: projections are folds over it.

The balance (kept in `balances` in the same transaction as every ledger insert)
and the summary are projections of the ledger; `replay` rebuilds both from the
ledger rows alone, in ledger order, and AccountsRepo.rebuild_balances rewrites
the stored balances from the ledger (the answer whenever a projection is in
doubt).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime

__all__ = ["LedgerEvent", "Projection", "replay"]


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerEvent:
    kind: str
    amount_cents: int
    balance_after_cents: int
    created_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Projection:
    """Everything the balance and summary endpoints say about one member."""

    balance_cents: int = 0
    total_paid_cents: int = 0
    total_charged_cents: int = 0
    transactions_count: int = 0
    last_transaction_at: datetime | None = None


def replay(events: Iterable[LedgerEvent], upto: datetime | None = None) -> Projection:
    """Fold the member's ledger (oldest first) into its projection, optionally
    only the events at or before `upto`. Raises ValueError if a row's stored
    balance disagrees with the running sum: the ledger would be corrupt."""
    state = Projection()
    for event in events:
        if upto is not None and event.created_at > upto:
            break
        paid = event.amount_cents if event.kind == "payment" else 0
        charged = event.amount_cents if event.kind == "charge" else 0
        state = Projection(
            balance_cents=state.balance_cents + paid - charged,
            total_paid_cents=state.total_paid_cents + paid,
            total_charged_cents=state.total_charged_cents + charged,
            transactions_count=state.transactions_count + 1,
            last_transaction_at=event.created_at,
        )
        if state.balance_cents != event.balance_after_cents:
            raise ValueError(
                f"ledger row at {event.created_at.isoformat()} says {event.balance_after_cents} cents, "
                f"the replay says {state.balance_cents}"
            )
    return state
