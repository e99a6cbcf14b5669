"""The rules of accounts: balance arithmetic, idempotency keys and fingerprints,
history cursors. SQL lives in repo.py, HTTP in app.py.

Balances: a payment adds its amount, a charge subtracts it. A negative balance is
money the member owes; it is allowed, since fees are charged whether or not the
member has paid in advance.

Idempotency (baseline): a payment or charge carries an `Idempotency-Key`, scoped
to (member, kind). The ledger's unique constraint on (member_id, kind, key) claims
the key in the same transaction as the balance change, so a key is used at most
once. A repeat whose fingerprint (caller, kind, member, canonical body) matches
gets the stored transaction again, byte for byte; a different fingerprint is
refused (so a key reused by another caller, e.g. an admin, never replays the
member's response); a repeat while the first is still running gets 409.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import re
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from bookvault.accounts.errors import IdempotencyKeyReused, InvalidRequest, MemberNotFound
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

__all__ = [
    "AccountsService",
    "Movement",
    "decode_cursor",
    "encode_cursor",
    "key_lock_id",
    "parse_idempotency_key",
    "request_fingerprint",
    "signed_amount",
]

# Visible ASCII only: keys travel in a header and are compared byte for byte.
_KEY_PATTERN = re.compile(r"[\x21-\x7e]{8,255}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_CURSOR_PATTERN = re.compile(rb"(-?\d{1,20})\.(\d{1,19})")
_canonical = msgspec.json.Encoder()


def parse_idempotency_key(raw: str | None) -> str:
    """The `Idempotency-Key` header value, or InvalidRequest saying what is wrong."""
    if raw is None or raw == "":
        raise InvalidRequest(
            "the Idempotency-Key header is required: send a unique value (e.g. a UUID) per payment or "
            "charge, and the same value again when retrying it"
        )
    if _KEY_PATTERN.fullmatch(raw) is None:
        raise InvalidRequest(
            "the Idempotency-Key header must be 8 to 255 visible ASCII characters, no spaces"
        )
    return raw


def request_fingerprint(principal: Principal, kind: Kind, member_id: int, body: MoneyMovement) -> str:
    """What makes two requests "the same": the caller, the endpoint and the decoded body.

    The body is re-encoded from its decoded form, so key order and whitespace do
    not matter; the caller is included so a key never replays to someone else.
    """
    parts = (
        f"{principal.role}:{principal.subject}".encode(),
        f"POST /members/{member_id}/{kind}s".encode(),
        _canonical.encode(body),
    )
    return hashlib.sha256(b"\n".join(parts)).hexdigest()


def key_lock_id(member_id: int, kind: Kind, key: str) -> int:
    """A signed 64-bit advisory lock id for one (member, kind, key)."""
    digest = hashlib.sha256(f"accounts-idempotency\n{member_id}\n{kind}\n{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


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


@dataclasses.dataclass(frozen=True, slots=True)
class Movement:
    """The outcome of a payment or charge request: the transaction, and whether
    it is a replay of one stored earlier under the same key."""

    transaction: Transaction
    replayed: bool


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
    __slots__ = ("_repo",)

    def __init__(self, repo: AccountsRepo) -> None:
        self._repo = repo

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
    ) -> Movement:
        """Record a payment or charge once per key; repeats get the stored result."""
        fingerprint = request_fingerprint(principal, kind, member_id, body)
        recorded = await self._repo.record(
            NewMovement(
                member_id=member_id,
                kind=kind,
                amount_cents=body.amount_cents,
                delta_cents=signed_amount(kind, body.amount_cents),
                currency=body.currency,
                idempotency_key=key,
                fingerprint=fingerprint,
                lock_id=key_lock_id(member_id, kind, key),
            )
        )
        if not recorded.created and recorded.row["request_fingerprint"] != fingerprint:
            raise IdempotencyKeyReused
        return Movement(transaction=_transaction(recorded.row), replayed=not recorded.created)

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
