"""Members and who may see them, against the running accounts service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.integration.accounts.conftest import Accounts

pytestmark = pytest.mark.stack


async def test_admin_creates_a_member_and_reads_it_back(accounts: Accounts) -> None:
    email = "Mixed.Case." + accounts.unique_email()
    reply = await accounts.call(
        "POST",
        "/members",
        token=accounts.admin(),
        payload={"name": "  Ada Reed ", "email": email, "tier": "vip"},
    )
    assert reply.status == 201, reply.body
    member = reply.json()
    assert member["name"] == "Ada Reed"
    assert member["email"] == email
    assert member["tier"] == "vip"
    assert reply.headers["Location"] == f"/api/accounts/v1/members/{member['id']}"

    again = await accounts.call("GET", f"/members/{member['id']}", token=accounts.token(member["id"]))
    assert again.status == 200
    assert again.json() == member
    balance = await accounts.balance(member["id"])
    assert balance["balance_cents"] == 0
    assert balance["currency"] == "USD"


async def test_email_is_unique_whatever_its_case(accounts: Accounts) -> None:
    email = accounts.unique_email()
    first = await accounts.call(
        "POST", "/members", token=accounts.admin(), payload={"name": "A", "email": email}
    )
    assert first.status == 201
    assert first.json()["tier"] == "standard"
    second = await accounts.call(
        "POST", "/members", token=accounts.admin(), payload={"name": "B", "email": email.upper()}
    )
    assert second.status == 409
    assert second.headers["Content-Type"] == "application/problem+json"
    assert "email already exists" in second.json()["detail"]


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"name": "A", "email": "a@example.org", "role": "admin"}, "unknown field `role`"),
        ({"name": "   ", "email": "a@example.org"}, "name must not be blank"),
        ({"name": "A", "email": "not-an-email"}, "email must look like"),
        ({"name": "A", "email": "a@example.org", "tier": "gold"}, "tier"),
        ({"email": "a@example.org"}, "missing required field `name`"),
        ({"name": "A" * 201, "email": "a@example.org"}, "length <= 200"),
    ],
    ids=["unknown-field", "blank-name", "bad-email", "bad-tier", "no-name", "long-name"],
)
async def test_invalid_members_are_refused_with_a_reason(
    accounts: Accounts, payload: dict[str, Any], detail: str
) -> None:
    reply = await accounts.call("POST", "/members", token=accounts.admin(), payload=payload)
    assert reply.status == 422
    assert detail in reply.json()["detail"]


async def test_malformed_json_is_a_400(accounts: Accounts) -> None:
    reply = await accounts.call("POST", "/members", token=accounts.admin(), data=b'{"name": ')
    assert reply.status == 400
    assert "malformed JSON" in reply.json()["detail"]


async def test_only_admins_create_members(accounts: Accounts) -> None:
    payload = {"name": "A", "email": accounts.unique_email()}
    anonymous = await accounts.call("POST", "/members", payload=payload)
    assert anonymous.status == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    member = await accounts.call("POST", "/members", token=accounts.token(5), payload=payload)
    assert member.status == 403


@pytest.mark.parametrize(
    ("who", "status"),
    [("none", 401), ("expired", 401), ("forged", 401), ("other", 403), ("self", 200), ("admin", 200)],
)
@pytest.mark.parametrize("resource", ["", "/balance", "/transactions", "/summary"])
async def test_members_see_only_their_own_account(
    accounts: Accounts, who: str, status: int, resource: str
) -> None:
    member_id = await accounts.new_member()
    tokens = {
        "none": None,
        "expired": accounts.make_token(str(member_id), ttl_s=-60),
        "forged": accounts.token(member_id)[:-2] + "xx",
        "other": accounts.token(member_id + 1),
        "self": accounts.token(member_id),
        "admin": accounts.admin(),
    }
    reply = await accounts.call("GET", f"/members/{member_id}{resource}", token=tokens[who])
    assert reply.status == status, reply.body
    if status == 200:
        body = reply.json()
        if resource == "/transactions":
            assert body == {"items": [], "next_cursor": None}
        else:
            assert body["id" if resource == "" else "member_id"] == member_id
        assert reply.headers["Cache-Control"] == "private, no-store"
    else:
        assert reply.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("raw_id", ["0", "-3", "abc", "1.5", "99999999999999999999"])
async def test_bad_member_ids_are_400(accounts: Accounts, raw_id: str) -> None:
    reply = await accounts.call("GET", f"/members/{raw_id}/balance", token=accounts.admin())
    assert reply.status == 400
    assert "member id must be a positive integer" in reply.json()["detail"]


async def test_unknown_member_is_404_everywhere(accounts: Accounts) -> None:
    unknown = 2**62
    for path in ("", "/balance", "/transactions", "/summary"):
        reply = await accounts.call("GET", f"/members/{unknown}{path}", token=accounts.admin())
        assert reply.status == 404, path
        assert reply.json()["detail"] == f"member {unknown} does not exist"
    paid = await accounts.pay(unknown, 100, token=accounts.admin())
    assert paid.status == 404
