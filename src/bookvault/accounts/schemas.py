"""The accounts API's request and response bodies.

Request bodies refuse unknown fields, so a typo (`amount` for `amount_cents`)
is a 422 rather than a silently ignored field. Money is always integer cents.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

import msgspec

__all__ = [
    "MAX_AMOUNT_CENTS",
    "Balance",
    "Currency",
    "Kind",
    "Member",
    "MoneyMovement",
    "NewMember",
    "Summary",
    "Tier",
    "Transaction",
    "TransactionPage",
]

Tier = Literal["standard", "vip"]
Kind = Literal["payment", "charge"]
Currency = Literal["USD"]
# One movement of more than 100,000 USD is a mistake in a library, not a fine.
MAX_AMOUNT_CENTS = 10_000_000


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class NewMember(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    email: Annotated[str, msgspec.Meta(max_length=254)]
    tier: Tier = "standard"

    def __post_init__(self) -> None:
        # msgspec turns a ValueError here into a validation error; a message in
        # words beats the regex msgspec would quote.
        if not self.name.strip():
            raise ValueError("name must not be blank")
        if _EMAIL.fullmatch(self.email.strip()) is None:
            raise ValueError(f"email must look like name@example.org, got {self.email[:60]!r}")


class MoneyMovement(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The body of a payment or a charge."""

    amount_cents: Annotated[int, msgspec.Meta(gt=0, le=MAX_AMOUNT_CENTS)]
    currency: Currency


class Member(msgspec.Struct, frozen=True):
    id: int
    name: str
    email: str
    tier: Tier
    created_at: datetime


class Balance(msgspec.Struct, frozen=True):
    member_id: int
    balance_cents: int
    currency: Currency
    as_of: datetime


class Transaction(msgspec.Struct, frozen=True):
    id: int
    member_id: int
    kind: Kind
    amount_cents: int
    balance_after_cents: int
    created_at: datetime


class TransactionPage(msgspec.Struct, frozen=True):
    items: list[Transaction]
    next_cursor: str | None


class Summary(msgspec.Struct, frozen=True):
    member_id: int
    total_paid_cents: int
    total_charged_cents: int
    transactions_count: int
    last_transaction_at: datetime | None
    as_of: datetime
