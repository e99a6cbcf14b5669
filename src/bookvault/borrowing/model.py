"""What a loan is, and the one rule about money it carries: the late fee."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Literal

import msgspec

LoanStatus = Literal["pending", "active", "returned", "cancelled"]
# The states a member ever sees. 'pending' is a saga in flight and 'cancelled'
# a saga that failed; neither was a loan from the member's point of view.
VISIBLE_STATUSES: tuple[LoanStatus, ...] = ("active", "returned")
_DAY = timedelta(days=1)


class Loan(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    member_id: int
    book_id: int
    status: LoanStatus
    reservation_id: str
    borrowed_at: datetime | None
    due_at: datetime | None
    returned_at: datetime | None
    fee_cents: int
    created_at: datetime

    @property
    def is_visible(self) -> bool:
        return self.status in VISIBLE_STATUSES


def late_days(due_at: datetime, returned_at: datetime) -> int:
    """Days past due, each started day counting as a whole one."""
    overdue = returned_at - due_at
    if overdue <= timedelta(0):
        return 0
    return math.ceil(overdue / _DAY)


def late_fee_cents(due_at: datetime, returned_at: datetime, cents_per_day: int) -> int:
    if cents_per_day < 0:
        raise ValueError("a late fee per day cannot be negative")
    return late_days(due_at, returned_at) * cents_per_day
