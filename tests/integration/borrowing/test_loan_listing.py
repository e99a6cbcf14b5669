"""Who may list a member's loans, and which loans a list shows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bookvault.config import Settings

if TYPE_CHECKING:
    from tests.integration.borrowing.conftest import Lending

pytestmark = pytest.mark.stack


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("anonymous", 401),
        ("forged", 401),
        ("expired", 401),
        ("other-member", 403),
        ("self", 200),
        ("admin", 200),
    ],
)
async def test_loan_listing_access(lending: Lending, who: str, status: int) -> None:
    book_id = await lending.new_book(copies=1)
    member = lending.new_member()
    loan = (await lending.borrow(member, book_id)).json()
    tokens = {
        "anonymous": None,
        "forged": lending.token(member) + "x",
        "expired": lending.make_token(str(member), ttl_s=-60),
        "other-member": lending.token(member + 1),
        "self": lending.token(member),
        "admin": lending.admin(),
    }
    url = f"{lending.borrowing}/members/{member}/loans"
    reply = await lending.call("GET", url, token=tokens[who])
    assert reply.status == status, reply.body
    if status == 200:
        assert [item["id"] for item in reply.json()["items"]] == [loan["id"]]
    else:
        assert reply.headers["Content-Type"] == "application/problem+json"
        assert str(loan["id"]) not in reply.body.decode()


async def test_lists_show_held_and_returned_loans_newest_first(lending: Lending) -> None:
    first, second = await lending.new_book(copies=1), await lending.new_book(copies=1)
    member = lending.new_member()
    kept = (await lending.borrow(member, first)).json()
    given_back = (await lending.borrow(member, second)).json()
    assert (await lending.give_back(member, given_back["id"])).status == 200
    assert (await lending.borrow(member, first)).status == 409  # a failed borrow is not a loan

    active = (await lending.loans_of(member, "?status=active")).json()["items"]
    assert [item["id"] for item in active] == [kept["id"]]
    everything = (await lending.loans_of(member, "?status=all")).json()["items"]
    assert [(item["id"], item["status"]) for item in everything] == [
        (given_back["id"], "returned"),
        (kept["id"], "active"),
    ]
    assert (await lending.loans_of(member)).json()["items"] == everything
    newest = (await lending.loans_of(member, "?limit=1")).json()["items"]
    assert [item["id"] for item in newest] == [given_back["id"]]


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/members/abc/loans", "member_id must be a positive integer"),
        ("/members/0/loans", "member_id must be a positive integer"),
        ("/members/{member}/loans?status=overdue", "status must be one of active, all"),
        ("/members/{member}/loans?limit=0", "limit must be between 1"),
        ("/members/{member}/loans?limit=many", "limit must be an integer"),
        ("/members/{member}/loans?sort=title", "unknown query parameter(s): sort"),
    ],
)
async def test_bad_listing_requests_are_400(lending: Lending, path: str, detail: str) -> None:
    member = lending.new_member()
    reply = await lending.call("GET", lending.borrowing + path.format(member=member), token=lending.admin())
    assert reply.status == 400, reply.body
    assert detail in reply.json()["detail"]


async def test_page_size_is_capped(lending: Lending, system: Settings) -> None:
    member = lending.new_member()
    too_many = await lending.loans_of(member, f"?limit={system.max_page_size + 1}")
    assert too_many.status == 400
    assert (await lending.loans_of(member, f"?limit={system.max_page_size}")).status == 200
