from datetime import UTC, datetime, timedelta, timezone

import pytest

from bookvault.borrowing.model import late_days, late_fee_cents

DUE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("returned_at", "days"),
    [
        (DUE - timedelta(days=3), 0),
        (DUE, 0),
        (DUE + timedelta(seconds=1), 1),
        (DUE + timedelta(days=1), 1),
        (DUE + timedelta(days=1, minutes=1), 2),
        (DUE + timedelta(days=10), 10),
    ],
)
def test_each_started_day_past_due_counts(returned_at: datetime, days: int) -> None:
    assert late_days(DUE, returned_at) == days
    assert late_fee_cents(DUE, returned_at, 25) == days * 25


def test_offsets_do_not_change_the_fee() -> None:
    # The same instant written in another zone is the same lateness.
    returned = (DUE + timedelta(days=2)).astimezone(timezone(timedelta(hours=9)))
    assert late_fee_cents(DUE, returned, 30) == 60


def test_free_when_the_library_charges_nothing() -> None:
    assert late_fee_cents(DUE, DUE + timedelta(days=5), 0) == 0


def test_a_negative_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        late_fee_cents(DUE, DUE + timedelta(days=1), -1)
