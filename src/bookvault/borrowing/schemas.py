"""The borrowing API's JSON shapes: request bodies are strict (unknown fields
are refused), responses carry only what API.md promises."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from bookvault.borrowing.model import Loan
from bookvault.web.validation import MAX_ID

PositiveId = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]


class BorrowRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    book_id: PositiveId
    # Only an admin may borrow on a member's behalf; for a member it must be
    # absent or their own id.
    member_id: PositiveId | None = None


class ReturnRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A return takes no fields; an empty body or `{}` is accepted."""


class LoanView(msgspec.Struct, frozen=True):
    id: int
    member_id: int
    book_id: int
    borrowed_at: datetime | None
    due_at: datetime | None
    returned_at: datetime | None
    status: str
    fee_cents: int


class LoanList(msgspec.Struct, frozen=True):
    items: list[LoanView]


def loan_view(loan: Loan) -> LoanView:
    return LoanView(
        id=loan.id,
        member_id=loan.member_id,
        book_id=loan.book_id,
        borrowed_at=loan.borrowed_at,
        due_at=loan.due_at,
        returned_at=loan.returned_at,
        status=loan.status,
        fee_cents=loan.fee_cents,
    )
