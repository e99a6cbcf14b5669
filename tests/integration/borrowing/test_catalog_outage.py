"""The catalog stopped while members borrow and return: clean 503s, no loan or
reserved copy left behind once the catalog is back and the reconciler has run."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from bookvault.borrowing.app import reconcile_min_age
from bookvault.borrowing.catalog_client import CatalogClient, NoCopyAvailable
from bookvault.borrowing.repo import PgLoanStore
from bookvault.borrowing.service import reconcile_pending
from bookvault.config import Settings

if TYPE_CHECKING:
    from tests.integration.borrowing.conftest import Lending, LoanTable

pytestmark = pytest.mark.stack


async def test_catalog_down_means_503_and_nothing_left_behind(
    lending: Lending,
    loan_table: LoanTable,
    catalog_client: CatalogClient,
    system: Settings,
    system_control: Any,
) -> None:
    book_id = await lending.new_book(copies=1)
    held_book = await lending.new_book(copies=1)
    member = lending.new_member()
    held = (await lending.borrow(member, held_book)).json()

    await asyncio.to_thread(system_control.stop_service, "catalog")
    try:
        refused = await lending.borrow(member, book_id)
        assert refused.status == 503, refused.body
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert "no loan was made" in refused.json()["detail"]
        # The release could not reach the catalog either: the loan waits, unseen.
        assert await loan_table.statuses(book_id) == ["pending"]
        listed = await lending.loans_of(member, "?status=all")
        assert [item["id"] for item in listed.json()["items"]] == [held["id"]]

        not_returned = await lending.give_back(member, held["id"])
        assert not_returned.status == 503
        assert "Retry-After" in not_returned.headers
        assert await loan_table.statuses(held_book) == ["active"]

        # Borrowing stays in rotation and says what is missing.
        assert (await lending.call("GET", f"{system.service_url('borrowing')}/readyz")).status == 200
        catalog_ready = await lending.call("GET", f"{system.service_url('borrowing')}/readyz/catalog")
        assert catalog_ready.status == 503
    finally:
        await asyncio.to_thread(system_control.start_service, "catalog")

    # The reconciler's round, run now with a clock past the takeover age.
    later = datetime.now(UTC) + reconcile_min_age(system) + timedelta(seconds=1)
    await reconcile_pending(
        PgLoanStore(loan_table.pool), catalog_client, now=later, min_age=reconcile_min_age(system)
    )
    assert await loan_table.statuses(book_id) == ["cancelled"]
    assert await lending.available_copies(book_id) == 1
    # The release fenced the id: a reserve that arrives late cannot take the copy.
    [reservation_id] = await loan_table.reservation_ids(book_id)
    with pytest.raises(NoCopyAvailable):
        await catalog_client.reserve(book_id, reservation_id)
    assert await lending.available_copies(book_id) == 1

    returned = await lending.give_back(member, held["id"])
    assert returned.status == 200, returned.body
    assert await lending.available_copies(held_book) == 1
    assert (await lending.borrow(member, book_id)).status == 201
