"""The borrow/return saga and the reconciler, decided against in-memory fakes of
the loan store and the catalog (the real ones are covered by integration tests)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from bookvault.auth import Principal
from bookvault.borrowing.catalog_client import (
    BookNotFound,
    CatalogError,
    CatalogProtocolError,
    CatalogUnavailable,
    NoCopyAvailable,
    Reservation,
)
from bookvault.borrowing.model import Loan, LoanStatus
from bookvault.borrowing.service import (
    BookUnavailable,
    BookUnknown,
    CatalogUnreachable,
    LoanNotActive,
    LoanNotFound,
    LoanPolicy,
    LoanService,
    NotYourLoan,
    reconcile_pending,
)
from bookvault.patterns.clock import FakeClock

MIN_AGE = timedelta(seconds=30)
MEMBER = Principal("7", "member")


class FakeClaim:
    def __init__(self, store: FakeStore, loan: Loan) -> None:
        self._store = store
        self.loan = loan

    async def cancel(self) -> None:
        await self._store.cancel_pending(self.loan.id)


class FakeStore:
    def __init__(self) -> None:
        self.loans: dict[int, Loan] = {}
        self._ids = itertools.count(1)
        self._claimed: set[int] = set()

    async def create_pending(
        self, member_id: int, book_id: int, reservation_id: str, created_at: datetime
    ) -> Loan:
        loan = Loan(
            id=next(self._ids),
            member_id=member_id,
            book_id=book_id,
            status="pending",
            reservation_id=reservation_id,
            borrowed_at=None,
            due_at=None,
            returned_at=None,
            fee_cents=0,
            created_at=created_at,
        )
        self.loans[loan.id] = loan
        return loan

    def _move(self, loan_id: int, expected: LoanStatus, **changes: object) -> Loan | None:
        loan = self.loans.get(loan_id)
        if loan is None or loan.status != expected:
            return None
        updated = msgspec.structs.replace(loan, **changes)
        self.loans[loan_id] = updated
        return updated

    async def activate(self, loan_id: int, borrowed_at: datetime, due_at: datetime) -> Loan | None:
        return self._move(loan_id, "pending", status="active", borrowed_at=borrowed_at, due_at=due_at)

    async def cancel_pending(self, loan_id: int) -> bool:
        return self._move(loan_id, "pending", status="cancelled") is not None

    async def get(self, loan_id: int) -> Loan | None:
        return self.loans.get(loan_id)

    async def mark_returned(self, loan_id: int, returned_at: datetime, fee_cents: int) -> Loan | None:
        return self._move(loan_id, "active", status="returned", returned_at=returned_at, fee_cents=fee_cents)

    async def list_for_member(
        self, member_id: int, statuses: tuple[LoanStatus, ...], limit: int
    ) -> list[Loan]:
        found = [x for x in self.loans.values() if x.member_id == member_id and x.status in statuses]
        return sorted(found, key=lambda x: -x.id)[:limit]

    async def stale_pending_ids(self, created_before: datetime, limit: int) -> list[int]:
        stale = [x for x in self.loans.values() if x.status == "pending" and x.created_at < created_before]
        return [x.id for x in sorted(stale, key=lambda x: x.created_at)][:limit]

    @contextlib.asynccontextmanager
    async def claim_pending(self, loan_id: int) -> AsyncIterator[FakeClaim | None]:
        loan = self.loans.get(loan_id)
        if loan is None or loan.status != "pending" or loan_id in self._claimed:
            yield None
            return
        self._claimed.add(loan_id)
        try:
            yield FakeClaim(self, loan)
        finally:
            self._claimed.discard(loan_id)

    def statuses(self) -> list[LoanStatus]:
        return [loan.status for loan in self.loans.values()]


class FakeCatalog:
    """Answers reserve/release with a scripted exception, or success."""

    def __init__(self) -> None:
        self.reserve_error: CatalogError | None = None
        self.release_error: CatalogError | None = None
        self.reserved: list[str] = []
        self.released: list[str] = []
        self.during_reserve: Callable[[], Awaitable[None]] | None = None

    async def reserve(self, book_id: int, reservation_id: str) -> Reservation:
        if self.during_reserve is not None:
            await self.during_reserve()
        if self.reserve_error is not None:
            raise self.reserve_error
        self.reserved.append(reservation_id)
        return Reservation(reservation_id=reservation_id, book_id=book_id, state="reserved")

    async def release(self, reservation_id: str) -> None:
        if self.release_error is not None:
            raise self.release_error
        self.released.append(reservation_id)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_start=datetime(2026, 3, 1, 9, 0, tzinfo=UTC).timestamp())


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def catalog() -> FakeCatalog:
    return FakeCatalog()


@pytest.fixture
def service(store: FakeStore, catalog: FakeCatalog, clock: FakeClock) -> LoanService:
    ids = (f"res-{n}" for n in itertools.count(1))
    return LoanService(
        store,
        catalog,
        LoanPolicy(loan_days=14, late_fee_cents_per_day=25),
        clock=clock,
        reservation_ids=lambda: next(ids),
    )


async def test_a_reserved_copy_makes_an_active_loan(service: LoanService, catalog: FakeCatalog) -> None:
    loan = await service.borrow(member_id=7, book_id=3)
    assert loan.status == "active"
    assert loan.borrowed_at == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert loan.due_at == datetime(2026, 3, 15, 9, 0, tzinfo=UTC)
    assert catalog.reserved == [loan.reservation_id]
    assert catalog.released == []


@pytest.mark.parametrize(
    ("error", "refusal"), [(NoCopyAvailable("none left"), BookUnavailable), (BookNotFound("no"), BookUnknown)]
)
async def test_a_refused_reserve_cancels_without_releasing(
    service: LoanService,
    store: FakeStore,
    catalog: FakeCatalog,
    error: CatalogError,
    refusal: type[Exception],
) -> None:
    catalog.reserve_error = error
    with pytest.raises(refusal):
        await service.borrow(member_id=7, book_id=3)
    assert store.statuses() == ["cancelled"]
    assert catalog.released == []


@pytest.mark.parametrize(
    "error",
    [
        CatalogUnavailable("timed out"),
        CatalogUnavailable("catalog answered 502"),
        CatalogProtocolError("401"),
    ],
)
async def test_an_unknown_outcome_is_released_then_cancelled(
    service: LoanService, store: FakeStore, catalog: FakeCatalog, error: CatalogError
) -> None:
    catalog.reserve_error = error
    with pytest.raises(CatalogUnreachable):
        await service.borrow(member_id=7, book_id=3)
    assert store.statuses() == ["cancelled"]
    assert catalog.released == ["res-1"]


async def test_a_failed_release_leaves_the_loan_pending_for_the_reconciler(
    service: LoanService, store: FakeStore, catalog: FakeCatalog, clock: FakeClock
) -> None:
    catalog.reserve_error = CatalogUnavailable("connection refused")
    catalog.release_error = CatalogUnavailable("connection refused")
    with pytest.raises(CatalogUnreachable):
        await service.borrow(member_id=7, book_id=3)
    assert store.statuses() == ["pending"]
    assert await service.list_loans(7, "all", 10) == []

    # Catalog still down: the reconciler keeps the loan pending.
    clock.advance(60)
    report = await reconcile_pending(store, catalog, now=service.now(), min_age=MIN_AGE)
    assert (report.cancelled, report.still_pending) == (0, 1)
    assert store.statuses() == ["pending"]

    # Catalog back: released (fencing any late reserve) and cancelled.
    catalog.release_error = None
    report = await reconcile_pending(store, catalog, now=service.now(), min_age=MIN_AGE)
    assert (report.cancelled, report.still_pending) == (1, 0)
    assert store.statuses() == ["cancelled"]
    assert catalog.released == ["res-1"]


async def test_the_reconciler_leaves_young_pending_loans_alone(
    store: FakeStore, catalog: FakeCatalog
) -> None:
    now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    await store.create_pending(7, 3, "young", now - timedelta(seconds=5))
    await store.create_pending(7, 3, "old", now - timedelta(minutes=5))
    report = await reconcile_pending(store, catalog, now=now, min_age=MIN_AGE)
    assert report.cancelled == 1
    assert catalog.released == ["old"]
    assert store.statuses() == ["pending", "cancelled"]


async def test_the_reconciler_stops_a_round_when_the_catalog_is_down(
    store: FakeStore, catalog: FakeCatalog
) -> None:
    now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    for n in range(3):
        await store.create_pending(7, 3, f"old-{n}", now - timedelta(minutes=5))
    catalog.release_error = CatalogUnavailable("connection refused")
    report = await reconcile_pending(store, catalog, now=now, min_age=MIN_AGE)
    assert (report.cancelled, report.still_pending) == (0, 1)


async def test_a_loan_the_reconciler_cancelled_is_never_activated(
    service: LoanService, store: FakeStore, catalog: FakeCatalog, clock: FakeClock
) -> None:
    async def slow_catalog() -> None:
        # The reserve takes so long that the reconciler takes the loan over.
        clock.advance(120)
        await reconcile_pending(store, catalog, now=service.now(), min_age=MIN_AGE)

    catalog.during_reserve = slow_catalog
    with pytest.raises(CatalogUnreachable):
        await service.borrow(member_id=7, book_id=3)
    assert store.statuses() == ["cancelled"]
    assert catalog.released == ["res-1"]


async def test_return_releases_and_charges_each_started_late_day(
    service: LoanService, catalog: FakeCatalog, clock: FakeClock
) -> None:
    loan = await service.borrow(member_id=7, book_id=3)
    clock.advance(timedelta(days=14 + 2, hours=3).total_seconds())
    returned = await service.return_loan(loan.id, MEMBER)
    assert returned.status == "returned"
    assert returned.fee_cents == 3 * 25
    assert returned.returned_at == datetime(2026, 3, 17, 12, 0, tzinfo=UTC)
    assert catalog.released == [loan.reservation_id]


async def test_return_on_time_is_free(service: LoanService) -> None:
    loan = await service.borrow(member_id=7, book_id=3)
    returned = await service.return_loan(loan.id, Principal("1", "admin"))
    assert returned.fee_cents == 0


async def test_return_while_the_catalog_is_down_keeps_the_loan_active(
    service: LoanService, store: FakeStore, catalog: FakeCatalog
) -> None:
    loan = await service.borrow(member_id=7, book_id=3)
    catalog.release_error = CatalogUnavailable("timed out")
    with pytest.raises(CatalogUnreachable):
        await service.return_loan(loan.id, MEMBER)
    assert store.statuses() == ["active"]
    catalog.release_error = None
    assert (await service.return_loan(loan.id, MEMBER)).status == "returned"


async def test_return_refusals(service: LoanService, store: FakeStore, catalog: FakeCatalog) -> None:
    loan = await service.borrow(member_id=7, book_id=3)
    with pytest.raises(NotYourLoan):
        await service.return_loan(loan.id, Principal("8", "member"))
    await service.return_loan(loan.id, MEMBER)
    with pytest.raises(LoanNotActive):
        await service.return_loan(loan.id, MEMBER)
    with pytest.raises(LoanNotFound):
        await service.return_loan(999, MEMBER)
    catalog.reserve_error = NoCopyAvailable("none left")
    with pytest.raises(BookUnavailable):
        await service.borrow(member_id=7, book_id=3)
    cancelled = next(x for x in store.loans.values() if x.status == "cancelled")
    # A failed borrow was never a loan, so it cannot be returned either.
    with pytest.raises(LoanNotFound):
        await service.return_loan(cancelled.id, MEMBER)


async def test_lists_show_only_loans_the_member_holds_or_held(
    service: LoanService, catalog: FakeCatalog
) -> None:
    kept = await service.borrow(member_id=7, book_id=1)
    returned = await service.borrow(member_id=7, book_id=2)
    await service.return_loan(returned.id, MEMBER)
    catalog.reserve_error = NoCopyAvailable("none left")
    with pytest.raises(BookUnavailable):
        await service.borrow(member_id=7, book_id=3)
    assert [x.id for x in await service.list_loans(7, "active", 10)] == [kept.id]
    assert [x.id for x in await service.list_loans(7, "all", 10)] == [returned.id, kept.id]
    assert await service.list_loans(8, "all", 10) == []
