"""The whole system through the gateway, as a client sees it."""

from __future__ import annotations

import asyncio
import io
import itertools
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from bookvault.config import Settings

pytestmark = pytest.mark.e2e

MakeToken = Callable[..., str]
_isbn_counter = itertools.count(random.Random().randrange(10**8))


def unique_isbn() -> str:
    """A valid ISBN-13 no other test uses."""
    body = f"979{next(_isbn_counter) % 10**9:09d}"
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create_book(client: aiohttp.ClientSession, gateway: str, admin: str, copies: int) -> dict[str, Any]:
    payload = {
        "isbn": unique_isbn(),
        "title": "The Last Copy",
        "author": "Ada Reed",
        "genre": "Mystery",
        "published_year": 2001,
        "total_copies": copies,
    }
    async with client.post(f"{gateway}/api/catalog/v1/books", json=payload, headers=bearer(admin)) as resp:
        assert resp.status == 201, await resp.text()
        book: dict[str, Any] = await resp.json()
        return book


async def create_member(client: aiohttp.ClientSession, gateway: str, admin: str) -> int:
    suffix = random.Random().randrange(10**12)
    payload = {"name": "Grace Hopper", "email": f"grace{suffix}@example.org", "tier": "standard"}
    async with client.post(f"{gateway}/api/accounts/v1/members", json=payload, headers=bearer(admin)) as resp:
        assert resp.status == 201, await resp.text()
        return int((await resp.json())["id"])


async def test_anonymous_reader_gets_a_book(
    system: Settings, client: aiohttp.ClientSession, make_token: MakeToken
) -> None:
    book = await create_book(client, system.gateway_url, make_token("1", "admin"), copies=2)
    async with client.get(f"{system.gateway_url}/api/catalog/v1/books/{book['id']}") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["isbn"] == book["isbn"]
    assert body["available_copies"] == 2
    assert resp.headers["X-Request-Id"]


async def test_request_id_is_kept_end_to_end(system: Settings, client: aiohttp.ClientSession) -> None:
    async with client.get(
        f"{system.gateway_url}/api/catalog/v1/books/999999999", headers={"X-Request-Id": "trace-abc.123"}
    ) as resp:
        assert resp.status == 404
        assert resp.headers["X-Request-Id"] == "trace-abc.123"
        assert resp.content_type == "application/problem+json"


@pytest.mark.parametrize(
    ("token_kind", "status"),
    [("none", 401), ("forged", 401), ("expired", 401), ("other-member", 403), ("self", 200), ("admin", 200)],
)
async def test_balance_access_matrix(
    system: Settings, client: aiohttp.ClientSession, make_token: MakeToken, token_kind: str, status: int
) -> None:
    admin = make_token("1", "admin")
    member_id = await create_member(client, system.gateway_url, admin)
    tokens = {
        "none": None,
        "forged": make_token(str(member_id)) + "x",
        "expired": make_token(str(member_id), ttl_s=-60),
        "other-member": make_token(str(member_id + 100_000)),
        "self": make_token(str(member_id)),
        "admin": admin,
    }
    token = tokens[token_kind]
    headers = bearer(token) if token else {}
    url = f"{system.gateway_url}/api/accounts/v1/members/{member_id}/balance"
    async with client.get(url, headers=headers) as resp:
        assert resp.status == status, await resp.text()
        if status == 200:
            body = await resp.json()
            assert body["member_id"] == member_id
            assert body["balance_cents"] == 0
        else:
            assert resp.content_type == "application/problem+json"


async def test_payment_moves_the_balance(
    system: Settings, client: aiohttp.ClientSession, make_token: MakeToken
) -> None:
    member_id = await create_member(client, system.gateway_url, make_token("1", "admin"))
    token = make_token(str(member_id))
    base = f"{system.gateway_url}/api/accounts/v1/members/{member_id}"
    headers = {**bearer(token), "Idempotency-Key": f"pay-{member_id}-0001"}
    async with client.post(
        f"{base}/payments", json={"amount_cents": 1250, "currency": "USD"}, headers=headers
    ) as r:
        assert r.status == 201, await r.text()
        first = await r.read()
    async with client.post(
        f"{base}/payments", json={"amount_cents": 1250, "currency": "USD"}, headers=headers
    ) as r:
        assert r.status == 201
        assert r.headers.get("Idempotent-Replayed") == "true"
        assert await r.read() == first
    async with client.get(f"{base}/balance", headers=bearer(token)) as r:
        assert (await r.json())["balance_cents"] == 1250


async def test_oversized_body_is_refused(
    system: Settings, client: aiohttp.ClientSession, make_token: MakeToken
) -> None:
    body = b'{"title": "' + b"x" * (system.max_body_bytes + 1) + b'"}'
    async with client.post(
        f"{system.gateway_url}/api/catalog/v1/books",
        data=io.BytesIO(body),
        headers={**bearer(make_token("1", "admin")), "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 413
        assert resp.content_type == "application/problem+json"


async def test_last_copy_goes_to_exactly_one_of_fifty_borrowers(
    system: Settings, client: aiohttp.ClientSession, make_token: MakeToken
) -> None:
    book = await create_book(client, system.gateway_url, make_token("1", "admin"), copies=1)
    url = f"{system.gateway_url}/api/borrowing/v1/loans"

    async def borrow(member: int) -> int:
        async with client.post(
            url, json={"book_id": book["id"]}, headers=bearer(make_token(str(member)))
        ) as r:
            await r.read()
            return r.status

    statuses = await asyncio.gather(*(borrow(500_000 + n) for n in range(50)))
    assert sorted(statuses) == [201] + [409] * 49
    async with client.get(f"{system.gateway_url}/api/catalog/v1/books/{book['id']}") as resp:
        assert (await resp.json())["available_copies"] == 0


async def test_borrow_and_return_through_the_gateway(
    system: Settings, client: aiohttp.ClientSession, make_token: MakeToken
) -> None:
    book = await create_book(client, system.gateway_url, make_token("1", "admin"), copies=3)
    member = make_token("700001")
    async with client.post(
        f"{system.gateway_url}/api/borrowing/v1/loans", json={"book_id": book["id"]}, headers=bearer(member)
    ) as resp:
        assert resp.status == 201, await resp.text()
        loan = await resp.json()
    assert loan["status"] == "active"
    assert loan["member_id"] == 700001
    async with client.get(f"{system.gateway_url}/api/catalog/v1/books/{book['id']}") as resp:
        assert (await resp.json())["available_copies"] == 2
    async with client.get(
        f"{system.gateway_url}/api/borrowing/v1/members/700002/loans", headers=bearer(member)
    ) as resp:
        assert resp.status == 403
    async with client.post(
        f"{system.gateway_url}/api/borrowing/v1/loans/{loan['id']}/return", headers=bearer(member)
    ) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["status"] == "returned"
    async with client.get(f"{system.gateway_url}/api/catalog/v1/books/{book['id']}") as resp:
        assert (await resp.json())["available_copies"] == 3


async def test_catalog_down_means_503_and_no_loan_left(
    system: Settings, system_control: Any, client: aiohttp.ClientSession, make_token: MakeToken
) -> None:
    book = await create_book(client, system.gateway_url, make_token("1", "admin"), copies=1)
    member = make_token("700100")
    system_control.stop_service("catalog")
    try:
        async with client.post(
            f"{system.gateway_url}/api/borrowing/v1/loans",
            json={"book_id": book["id"]},
            headers=bearer(member),
        ) as resp:
            assert resp.status == 503
            assert int(resp.headers["Retry-After"]) > 0
            assert resp.content_type == "application/problem+json"
        async with client.get(
            f"{system.gateway_url}/api/borrowing/v1/members/700100/loans?status=all", headers=bearer(member)
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["items"] == []
    finally:
        system_control.start_service("catalog")
    async with client.get(f"{system.gateway_url}/api/catalog/v1/books/{book['id']}") as resp:
        assert (await resp.json())["available_copies"] == 1
