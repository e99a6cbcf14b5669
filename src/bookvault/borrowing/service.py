"""Borrowing and returning copies: a two-step saga across borrowing's database
and the catalog, plus the reconciler that finishes sagas a crash or an outage
left half-done.

Borrow, step by step (every arrow is a committed write):

    pending ──reserve 201/200──► active
       │  ──reserve 409/404───► cancelled               (nothing was reserved)
       │  ──reserve unknown───► release ok ─► cancelled (copy given back or id fenced)
       │                        release fails ─► stays pending; the reconciler releases later
       └── crash at any point ─► stays pending; the reconciler releases later

Guarantees: a member is told "201" only for an active loan; every loan that is
not active holds no copy once the catalog has been reached (release is
idempotent and fences a reserve that arrives late); and only 'active' and
'returned' loans are ever shown to a member.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from bookvault.auth import Principal
from bookvault.borrowing.catalog_client import (
    BookNotFound,
    CatalogError,
    CatalogUnavailable,
    NoCopyAvailable,
    Reservation,
)
from bookvault.borrowing.model import VISIBLE_STATUSES, Loan, LoanStatus, late_fee_cents
from bookvault.logs import get_logger
from bookvault.patterns.clock import Clock, SystemClock

log = get_logger(__name__)

ListFilter = Literal["active", "all"]


# --- ports ----------------------------------------------------------------


class CatalogPort(Protocol):
    async def reserve(self, book_id: int, reservation_id: str) -> Reservation: ...

    async def release(self, reservation_id: str) -> None: ...


class PendingClaim(Protocol):
    """A pending loan held exclusively until the claim ends, so a borrow request
    cannot activate it while the reconciler is releasing its copy."""

    @property
    def loan(self) -> Loan: ...

    async def cancel(self) -> None: ...


class LoanStore(Protocol):
    async def create_pending(
        self, member_id: int, book_id: int, reservation_id: str, created_at: datetime
    ) -> Loan: ...

    async def activate(self, loan_id: int, borrowed_at: datetime, due_at: datetime) -> Loan | None:
        """Pending → active; None when the loan is no longer pending."""

    async def cancel_pending(self, loan_id: int) -> bool:
        """Pending → cancelled; False when the loan is no longer pending."""

    async def get(self, loan_id: int) -> Loan | None: ...

    async def mark_returned(self, loan_id: int, returned_at: datetime, fee_cents: int) -> Loan | None:
        """Active → returned; None when the loan is no longer active."""

    async def list_for_member(
        self, member_id: int, statuses: tuple[LoanStatus, ...], limit: int
    ) -> list[Loan]: ...

    async def stale_pending_ids(self, created_before: datetime, limit: int) -> list[int]: ...

    def claim_pending(self, loan_id: int) -> contextlib.AbstractAsyncContextManager[PendingClaim | None]:
        """Hold `loan_id` if it is still pending and nobody else holds it; else yield None."""


# --- what can go wrong, in the service's words ------------------------------


class BorrowingError(Exception):
    """A borrow or return the service refused; the message is for the user."""


class BookUnavailable(BorrowingError):
    pass


class BookUnknown(BorrowingError):
    pass


class CatalogUnreachable(BorrowingError):
    """The catalog could not be reached; nothing changed, try again later."""


class LoanNotFound(BorrowingError):
    pass


class NotYourLoan(BorrowingError):
    pass


class LoanNotActive(BorrowingError):
    pass


# --- the service --------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class LoanPolicy:
    loan_days: int
    late_fee_cents_per_day: int


def new_reservation_id() -> str:
    # Random rather than derived from the loan id: a recreated borrowing database
    # reuses ids, and the catalog would fence a reused reservation id forever.
    return f"loan-{uuid.uuid4().hex}"


class LoanService:
    def __init__(
        self,
        store: LoanStore,
        catalog: CatalogPort,
        policy: LoanPolicy,
        *,
        clock: Clock | None = None,
        reservation_ids: Callable[[], str] = new_reservation_id,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._policy = policy
        self._clock = clock or SystemClock()
        self._reservation_ids = reservation_ids

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.time(), UTC)

    async def borrow(self, member_id: int, book_id: int) -> Loan:
        """Lend one copy of `book_id` to `member_id`; the loan is active when this returns."""
        loan = await self._store.create_pending(member_id, book_id, self._reservation_ids(), self.now())
        bound = log.bind(loan_id=loan.id, book_id=book_id, reservation_id=loan.reservation_id)
        try:
            await self._catalog.reserve(book_id, loan.reservation_id)
        except NoCopyAvailable:
            await self._store.cancel_pending(loan.id)
            raise BookUnavailable(f"no copy of book {book_id} is available right now") from None
        except BookNotFound:
            await self._store.cancel_pending(loan.id)
            raise BookUnknown(f"book {book_id} does not exist") from None
        except CatalogError as exc:
            # The reserve may have happened; releasing makes the outcome certain.
            released = await self._release_quietly(loan)
            if released:
                await self._store.cancel_pending(loan.id)
            bound.warning("borrow abandoned: catalog unreachable", error=str(exc), released=released)
            raise CatalogUnreachable("the catalog cannot be reached; no loan was made") from exc
        borrowed_at = self.now()
        active = await self._store.activate(
            loan.id, borrowed_at, borrowed_at + timedelta(days=self._policy.loan_days)
        )
        if active is None:
            # The reconciler released this reservation while the catalog was slow.
            bound.warning("borrow abandoned: reservation released by the reconciler")
            raise CatalogUnreachable("the catalog answered too late; no loan was made")
        return active

    async def return_loan(self, loan_id: int, actor: Principal) -> Loan:
        """Give the copy back and close the loan. The late fee is recorded on the
        loan (`fee_cents`); charging it to the member's account is not done here."""
        loan = await self._store.get(loan_id)
        if loan is None or not loan.is_visible:
            raise LoanNotFound(f"loan {loan_id} does not exist")
        if not actor.may_act_for(loan.member_id):
            raise NotYourLoan("members may only return their own loans")
        if loan.status != "active":
            raise LoanNotActive(f"loan {loan_id} is already {loan.status}")
        if loan.due_at is None:  # the schema's check makes this unreachable; never guess a fee
            raise RuntimeError(f"active loan {loan_id} has no due date")
        try:
            # Release before closing: if the catalog is down the loan stays active,
            # and a retry releases the same reservation id at most once.
            await self._catalog.release(loan.reservation_id)
        except CatalogError as exc:
            log.warning("return deferred: catalog unreachable", loan_id=loan.id, error=str(exc))
            raise CatalogUnreachable("the catalog cannot be reached; the loan is still active") from exc
        returned_at = self.now()
        fee = late_fee_cents(loan.due_at, returned_at, self._policy.late_fee_cents_per_day)
        returned = await self._store.mark_returned(loan.id, returned_at, fee)
        if returned is None:
            raise LoanNotActive(f"loan {loan_id} was returned by another request")
        return returned

    async def list_loans(self, member_id: int, which: ListFilter, limit: int) -> list[Loan]:
        statuses: tuple[LoanStatus, ...] = ("active",) if which == "active" else VISIBLE_STATUSES
        return await self._store.list_for_member(member_id, statuses, limit)

    async def _release_quietly(self, loan: Loan) -> bool:
        try:
            await self._catalog.release(loan.reservation_id)
        except CatalogError:
            return False
        return True


# --- the reconciler --------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ReconcileReport:
    cancelled: int = 0
    still_pending: int = 0


async def reconcile_pending(
    store: LoanStore,
    catalog: CatalogPort,
    *,
    now: datetime,
    min_age: timedelta,
    batch_size: int = 100,
) -> ReconcileReport:
    """Release and cancel pending loans created before `now - min_age`.

    `min_age` must exceed the longest a live borrow request can take, so the
    reconciler only finishes sagas nobody is still driving; the claim makes even
    a too-short age safe (a late activation then finds the loan cancelled).
    """
    cancelled = still_pending = 0
    for loan_id in await store.stale_pending_ids(now - min_age, batch_size):
        async with store.claim_pending(loan_id) as claim:
            if claim is None:
                continue  # activated, cancelled or claimed meanwhile
            try:
                await catalog.release(claim.loan.reservation_id)
            except CatalogUnavailable:
                # Every other release would fail the same way; try again next round.
                still_pending += 1
                break
            except CatalogError as exc:
                log.error("reconciler could not release", loan_id=loan_id, error=str(exc))
                still_pending += 1
                continue
            await claim.cancel()
            cancelled += 1
    if cancelled or still_pending:
        log.info("reconciled pending loans", cancelled=cancelled, still_pending=still_pending)
    return ReconcileReport(cancelled=cancelled, still_pending=still_pending)


async def run_reconciler(
    store: LoanStore,
    catalog: CatalogPort,
    *,
    clock: Clock,
    interval_s: float,
    min_age: timedelta,
) -> None:
    """Reconcile every `interval_s` until cancelled; one failed round never stops it."""
    while True:
        await clock.sleep(interval_s)
        try:
            await reconcile_pending(
                store, catalog, now=datetime.fromtimestamp(clock.time(), UTC), min_age=min_age
            )
        except Exception as exc:  # noqa: BLE001 - a database blip must not end the loop
            log.error("reconciler round failed", error=str(exc) or type(exc).__name__)
