"""Borrowing and returning copies against the running borrowing and catalog services."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from bookvault.config import Settings

if TYPE_CHECKING:
    from tests.integration.borrowing.conftest import Lending, LoanTable

pytestmark = pytest.mark.stack


async def test_the_last_copy_goes_to_exactly_one_of_fifty_borrowers(
    lending: Lending, loan_table: LoanTable
) -> None:
    book_id = await lending.new_book(copies=1)
    members = [lending.new_member() for _ in range(50)]
    replies = await asyncio.gather(*(lending.borrow(member, book_id) for member in members))

    assert sorted(reply.status for reply in replies) == [201] + [409] * 49
    winner = next(reply for reply in replies if reply.status == 201).json()
    assert winner["status"] == "active"
    assert all(r.headers["Content-Type"] == "application/problem+json" for r in replies if r.status == 409)
    assert await lending.available_copies(book_id) == 0
    statuses = await loan_table.statuses(book_id)
    assert statuses.count("active") == 1
    assert statuses.count("cancelled") == 49


async def test_borrow_then_return_gives_the_copy_back(
    lending: Lending, loan_table: LoanTable, system: Settings
) -> None:
    book_id = await lending.new_book(copies=3)
    member = lending.new_member()

    borrowed = await lending.borrow(member, book_id)
    assert borrowed.status == 201, borrowed.body
    loan = borrowed.json()
    assert set(loan) == {
        "id", "member_id", "book_id", "borrowed_at", "due_at", "returned_at", "status", "fee_cents"
    }  # fmt: skip
    assert (loan["member_id"], loan["book_id"], loan["status"]) == (member, book_id, "active")
    assert loan["returned_at"] is None
    assert loan["fee_cents"] == 0
    borrowed_at = datetime.fromisoformat(loan["borrowed_at"])
    assert datetime.fromisoformat(loan["due_at"]) - borrowed_at == timedelta(days=system.loan_days)
    assert borrowed.headers["Location"] == f"/api/borrowing/v1/loans/{loan['id']}"
    assert await lending.available_copies(book_id) == 2

    returned = await lending.give_back(member, loan["id"])
    assert returned.status == 200, returned.body
    closed = returned.json()
    assert (closed["id"], closed["status"], closed["fee_cents"]) == (loan["id"], "returned", 0)
    assert datetime.fromisoformat(closed["returned_at"]) >= borrowed_at
    assert await lending.available_copies(book_id) == 3

    again = await lending.give_back(member, loan["id"])
    assert again.status == 409
    assert await lending.available_copies(book_id) == 3
    assert await loan_table.statuses(book_id) == ["returned"]


async def test_a_late_return_records_a_fee_per_started_day(
    lending: Lending, loan_table: LoanTable, system: Settings
) -> None:
    book_id = await lending.new_book(copies=1)
    member = lending.new_member()
    loan = (await lending.borrow(member, book_id)).json()
    # Due three days and two hours ago: four started days late.
    await loan_table.move_back(loan["id"], timedelta(days=system.loan_days + 3, hours=2))

    returned = await lending.give_back(member, loan["id"])
    assert returned.status == 200, returned.body
    assert returned.json()["fee_cents"] == 4 * system.late_fee_cents_per_day
    assert await lending.available_copies(book_id) == 1


async def test_an_admin_lends_on_a_members_behalf(lending: Lending) -> None:
    book_id = await lending.new_book(copies=1)
    member = lending.new_member()
    reply = await lending.call(
        "POST",
        f"{lending.borrowing}/loans",
        token=lending.admin(),
        payload={"book_id": book_id, "member_id": member},
    )
    assert reply.status == 201, reply.body
    assert reply.json()["member_id"] == member
    listed = await lending.loans_of(member, "?status=active")
    assert [item["id"] for item in listed.json()["items"]] == [reply.json()["id"]]


@pytest.mark.parametrize(
    ("who", "status"),
    [("anonymous", 401), ("forged", 401), ("service", 403), ("other-member-for-someone", 403)],
)
async def test_who_may_borrow(lending: Lending, loan_table: LoanTable, who: str, status: int) -> None:
    book_id = await lending.new_book(copies=1)
    member = lending.new_member()
    tokens = {
        "anonymous": None,
        "forged": lending.token(member)[:-2] + "xx",
        "service": lending.make_token("borrowing", "service"),
        "other-member-for-someone": lending.token(member),
    }
    payload = {"book_id": book_id, "member_id": member + 1}
    reply = await lending.call("POST", f"{lending.borrowing}/loans", token=tokens[who], payload=payload)
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"] == "application/problem+json"
    assert await loan_table.statuses(book_id) == []
    assert await lending.available_copies(book_id) == 1


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b'{"book_id": 1, "due": "tomorrow"}', 422, "unknown field `due`"),
        (b'{"book_id": "1"}', 422, "Expected `int`"),
        (b'{"book_id": 0}', 422, ">= 1"),
        (b'{"book_id": 99999999999999999999}', 422, "book_id"),
        (b"{}", 422, "book_id"),
        (b'{"book_id": 1', 400, "malformed JSON"),
        (b"", 400, "body is required"),
    ],
)
async def test_bad_borrow_bodies_are_refused_with_a_reason(
    lending: Lending, body: bytes, status: int, detail: str
) -> None:
    member = lending.new_member()
    reply = await lending.call("POST", f"{lending.borrowing}/loans", token=lending.token(member), data=body)
    assert reply.status == status, reply.body
    assert detail in reply.json()["detail"]


async def test_an_unknown_book_is_404_and_leaves_no_loan(lending: Lending, loan_table: LoanTable) -> None:
    missing = 9_000_000_000_000 + lending.new_member()
    member = lending.new_member()
    reply = await lending.borrow(member, missing)
    assert reply.status == 404, reply.body
    assert await loan_table.statuses(missing) == ["cancelled"]
    assert (await lending.loans_of(member, "?status=all")).json()["items"] == []


async def test_who_may_return(lending: Lending) -> None:
    book_id = await lending.new_book(copies=1)
    member = lending.new_member()
    loan = (await lending.borrow(member, book_id)).json()

    stranger = await lending.give_back(member, loan["id"], token=lending.token(member + 1))
    assert stranger.status == 403
    anonymous = await lending.call("POST", f"{lending.borrowing}/loans/{loan['id']}/return")
    assert anonymous.status == 401
    assert (await lending.give_back(member, 9_000_000_000_000_000)).status == 404
    for bad_id in ("0", "-1", "abc", "99999999999999999999"):
        bad = await lending.call(
            "POST", f"{lending.borrowing}/loans/{bad_id}/return", token=lending.token(member)
        )
        assert bad.status == 400, bad_id
    assert await lending.available_copies(book_id) == 0

    by_admin = await lending.give_back(member, loan["id"], token=lending.admin())
    assert by_admin.status == 200
    assert await lending.available_copies(book_id) == 1
