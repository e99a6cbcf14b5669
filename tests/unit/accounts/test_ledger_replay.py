"""Replaying the ledger into the balance and summary projections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bookvault.accounts.ledger import LedgerEvent, Projection, replay

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEDGER = [
    LedgerEvent("payment", 1_000, 1_000, T0),
    LedgerEvent("charge", 1_500, -500, T0 + timedelta(days=1)),
    LedgerEvent("payment", 200, -300, T0 + timedelta(days=2)),
]


def test_an_empty_ledger_is_a_zero_balance() -> None:
    assert replay([]) == Projection()


def test_replay_folds_payments_and_charges() -> None:
    assert replay(LEDGER) == Projection(
        balance_cents=-300,
        total_paid_cents=1_200,
        total_charged_cents=1_500,
        transactions_count=3,
        last_transaction_at=T0 + timedelta(days=2),
    )


@pytest.mark.parametrize(("days", "balance"), [(-1, 0), (0, 1_000), (1, -500), (1.5, -500), (30, -300)])
def test_replay_up_to_an_instant_is_the_balance_as_of_then(days: float, balance: int) -> None:
    assert replay(LEDGER, upto=T0 + timedelta(days=days)).balance_cents == balance


def test_a_row_disagreeing_with_the_running_sum_is_reported() -> None:
    corrupt = [*LEDGER[:2], LedgerEvent("payment", 200, 999, T0 + timedelta(days=2))]
    with pytest.raises(ValueError, match="says 999 cents, the replay says -300"):
        replay(corrupt)
