"""The rules of accounts: balance arithmetic, idempotency keys and fingerprints,
history cursors. SQL lives in repo.py, HTTP in app.py.

Balances: a payment adds its amount, a charge subtracts it. A negative balance is
money the member owes; it is allowed, since fees are charged whether or not the
member has paid in advance.

Idempotency (bookvault.patterns.idempotency): a payment or charge carries an
`Idempotency-Key`, scoped to (principal, method, path, key), so another caller's
identical key, an admin's included, is an independent request. The key is
claimed in the same transaction as the balance change and stores the response:
a repeat with the same body gets it back byte for byte, a different body is
refused (422), a repeat while the first is still running gets 409. A request
for a member that does not exist completes with a 404 that is stored too.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from bookvault.accounts.errors import InvalidRequest, MemberNotFound
from bookvault.accounts.repo import AccountsRepo, NewMovement
from bookvault.accounts.schemas import (
    Balance,
    Kind,
    Member,
    MoneyMovement,
    NewMember,
    Summary,
    Transaction,
    TransactionPage,
)
from bookvault.auth import Principal
from bookvault.patterns.idempotency import Idempotency, Outcome, Scope, StoredResponse, fingerprint
from bookvault.web.problems import PROBLEM_CONTENT_TYPE, problem_body

__all__ = [
    "PREFIX",
    "AccountsService",
    "decode_cursor",
    "encode_cursor",
    "movement_scope",
    "request_fingerprint",
    "signed_amount",
]

PREFIX = "/api/accounts/v1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_CURSOR_PATTERN = re.compile(rb"(-?\d{1,20})\.(\d{1,19})")
_canonical = msgspec.json.Encoder()


def movement_scope(principal: Principal, member_id: int, kind: Kind, key: str) -> Scope:
    """The key's scope: the caller and the canonical endpoint (so /members/007 and
    /members/7 are one path)."""
    return Scope(
        f"{principal.role}:{principal.subject}", "POST", f"{PREFIX}/members/{member_id}/{kind}s", key
    )


def request_fingerprint(scope: Scope, body: MoneyMovement) -> str:
    """The body is re-encoded from its decoded form, so key order and whitespace
    do not make two requests different."""
    return fingerprint(scope, _canonical.encode(body))


def signed_amount(kind: Kind, amount_cents: int) -> int:
    """The movement's effect on the balance: payments add, charges subtract."""
    return amount_cents if kind == "payment" else -amount_cents


def encode_cursor(created_at: datetime, transaction_id: int) -> str:
    micros = (created_at - _EPOCH) // _MICROSECOND
    return base64.urlsafe_b64encode(f"{micros}.{transaction_id}".encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (created_at, id) position a cursor points after; InvalidRequest if it is not ours."""
    invalid = InvalidRequest("cursor is not valid: pass the next_cursor of a previous page unchanged")
    if not cursor.isascii() or len(cursor) > 64:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise invalid from None
    match = _CURSOR_PATTERN.fullmatch(raw)
    if match is None:
        raise invalid
    try:
        created_at = _EPOCH + int(match.group(1)) * _MICROSECOND
    except OverflowError:
        raise invalid from None
    return created_at, int(match.group(2))


_JSON_HEADERS = (("content-type", "application/json"),)
_PROBLEM_HEADERS = (("content-type", PROBLEM_CONTENT_TYPE),)


def _rendered(member_id: int, row: asyncpg.Record | None) -> StoredResponse:
    """The response stored under a key: 201 with the new transaction, or 404."""
    if row is None:
        detail = str(MemberNotFound(member_id))
        return StoredResponse(404, _PROBLEM_HEADERS, problem_body(404, detail))
    return StoredResponse(201, _JSON_HEADERS, _canonical.encode(_transaction(row)))


def _member(row: asyncpg.Record) -> Member:
    return Member(
        id=row["id"], name=row["name"], email=row["email"], tier=row["tier"], created_at=row["created_at"]
    )


def _transaction(row: asyncpg.Record) -> Transaction:
    return Transaction(
        id=row["id"],
        member_id=row["member_id"],
        kind=row["kind"],
        amount_cents=row["amount_cents"],
        balance_after_cents=row["balance_after_cents"],
        created_at=row["created_at"],
    )


class AccountsService:
    __slots__ = ("_after_commit", "_guard", "_repo")

    def __init__(
        self,
        repo: AccountsRepo,
        guard: Idempotency | None = None,
        after_commit: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self._repo = repo
        self._guard = guard or Idempotency()
        # Told the member id once a payment or charge is over (committed, or replayed);
        # the read caches invalidate there (accounts/caching.py).
        self._after_commit = after_commit

    async def create_member(self, new: NewMember) -> Member:
        # Surrounding spaces are copy-paste noise, never part of a name or address.
        row = await self._repo.create_member(new.name.strip(), new.email.strip(), new.tier)
        return _member(row)

    async def member(self, member_id: int) -> Member:
        row = await self._repo.member(member_id)
        if row is None:
            raise MemberNotFound(member_id)
        return _member(row)

    async def balance(self, member_id: int, as_of: datetime | None) -> Balance:
        """The balance now, or at a past instant (from the ledger). An `as_of` in
        the future is answered with the balance now, and `as_of` says when that is."""
        row = await self._repo.balance(member_id, as_of)
        if row is None:
            raise MemberNotFound(member_id)
        return Balance(
            member_id=row["member_id"],
            balance_cents=row["balance_cents"],
            currency=row["currency"],
            as_of=row["as_of"],
        )

    async def move(
        self, principal: Principal, member_id: int, kind: Kind, key: str, body: MoneyMovement
    ) -> Outcome:
        """Record a payment or charge once per key; repeats get the stored response."""
        scope = movement_scope(principal, member_id, kind, key)
        outcome = await self._repo.record_once(
            self._guard,
            NewMovement(
                member_id=member_id,
                kind=kind,
                amount_cents=body.amount_cents,
                delta_cents=signed_amount(kind, body.amount_cents),
                currency=body.currency,
                scope=scope,
                fingerprint=request_fingerprint(scope, body),
            ),
            lambda row: _rendered(member_id, row),
        )
        if self._after_commit is not None:
            await self._after_commit(member_id)
        return outcome

    async def transactions(
        self,
        member_id: int,
        *,
        limit: int,
        cursor: str | None,
        start: datetime | None,
        end: datetime | None,
    ) -> TransactionPage:
        """One page of the ledger, newest first, with `start <= created_at < end`."""
        if start is not None and end is not None and start >= end:
            raise InvalidRequest("from must be earlier than to")
        before = decode_cursor(cursor) if cursor is not None else None
        # One row more than asked tells whether another page exists.
        rows = await self._repo.transactions(member_id, start=start, end=end, before=before, limit=limit + 1)
        if not rows and not await self._repo.member_exists(member_id):
            raise MemberNotFound(member_id)
        items = [_transaction(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = encode_cursor(last.created_at, last.id)
        return TransactionPage(items=items, next_cursor=next_cursor)

    async def summary(self, member_id: int) -> Summary:
        """Totals computed from the ledger at request time."""
        row = await self._repo.summary(member_id)
        if row is None:
            raise MemberNotFound(member_id)
        return Summary(
            member_id=row["member_id"],
            total_paid_cents=row["total_paid_cents"],
            total_charged_cents=row["total_charged_cents"],
            transactions_count=row["transactions_count"],
            last_transaction_at=row["last_transaction_at"],
            as_of=row["as_of"],
        )
