"""Who may pass the gateway: anonymous catalog reads, signed tokens, a member's own data."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import aiohttp
import pytest

from bookvault.auth import TokenCodec

if TYPE_CHECKING:
    from tests.integration.gateway.conftest import EchoUpstream, Gateway


async def test_anonymous_catalog_reads_pass(
    gateway: Gateway, upstream: EchoUpstream, client: aiohttp.ClientSession
) -> None:
    async with client.get(f"{gateway.url}/api/catalog/v1/books/anon-read") as resp:
        assert resp.status == 200
    assert len(upstream.saw("anon-read")) == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/catalog/v1/books?anon-write"),
        ("DELETE", "/api/catalog/v1/books/anon-delete"),
        ("GET", "/api/accounts/v1/members/1/balance?anon-balance"),
    ],
)
async def test_anything_else_anonymous_is_401(
    gateway: Gateway, upstream: EchoUpstream, client: aiohttp.ClientSession, method: str, path: str
) -> None:
    async with client.request(method, gateway.url + path, json={}) as resp:
        assert resp.status == 401
        assert resp.content_type == "application/problem+json"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert resp.headers["X-Request-Id"]
    assert upstream.saw(path.rsplit("/", 1)[-1].split("?")[-1]) == []


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(TokenCodec("another-key-entirely-0123456789-abcdef").sign("5", "member"), id="forged"),
        pytest.param("expired", id="expired"),
        pytest.param(
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiI1Iiwicm9sZSI6ImFkbWluIiwiaXNzIjoiYm9va3Zh"
            "dWx0IiwiZXhwIjo0MDAwMDAwMDAwfQ.",
            id="alg-none",
        ),
    ],
)
async def test_bad_tokens_are_401_even_for_catalog_reads(
    gateway: Gateway, upstream: EchoUpstream, client: aiohttp.ClientSession, token: str
) -> None:
    header = gateway.bearer("5", ttl_s=-30) if token == "expired" else {"Authorization": f"Bearer {token}"}
    async with client.get(f"{gateway.url}/api/catalog/v1/books/bad-token", headers=header) as resp:
        assert resp.status == 401
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert upstream.saw("bad-token") == []


async def test_a_member_reading_another_members_balance_is_403(
    gateway: Gateway, upstream: EchoUpstream, client: aiohttp.ClientSession
) -> None:
    url = f"{gateway.url}/api/accounts/v1/members/2002/balance?other-member"
    async with client.get(url, headers=gateway.bearer("1001")) as resp:
        assert resp.status == 403
        assert resp.content_type == "application/problem+json"
    assert upstream.saw("other-member") == []


async def test_own_data_passes_with_the_original_token(
    gateway: Gateway, upstream: EchoUpstream, client: aiohttp.ClientSession
) -> None:
    headers = gateway.bearer("1001")
    url = f"{gateway.url}/api/accounts/v1/members/1001/balance?own-member"
    async with client.get(url, headers=headers) as resp:
        assert resp.status == 200
    [seen] = upstream.saw("own-member")
    # The service verifies the token itself, so it gets exactly what the client sent.
    assert seen.header("authorization") == [headers["Authorization"]]


async def test_admins_may_read_any_member(
    gateway: Gateway, upstream: EchoUpstream, client: aiohttp.ClientSession
) -> None:
    url = f"{gateway.url}/api/accounts/v1/members/2002/balance?admin-read"
    async with client.get(url, headers=gateway.bearer("1", "admin")) as resp:
        assert resp.status == 200
    assert len(upstream.saw("admin-read")) == 1


async def test_internal_service_tokens_are_refused_from_outside(
    gateway: Gateway, upstream: EchoUpstream, client: aiohttp.ClientSession
) -> None:
    url = f"{gateway.url}/api/accounts/v1/members/2002/charges?service-token"
    async with client.post(url, json={}, headers=gateway.bearer("borrowing", "service")) as resp:
        assert resp.status == 403
    assert upstream.saw("service-token") == []


async def test_a_refused_upload_still_reads_as_401(
    gateway: Gateway, upstream: EchoUpstream, client: aiohttp.ClientSession
) -> None:
    # Bigger than the socket buffers: unless the gateway drains it, the client sees a reset, not a 401.
    body = b"x" * (2 * 1024 * 1024)
    for _ in range(2):
        url = f"{gateway.url}/api/catalog/v1/books?refused-upload"
        async with client.post(url, data=io.BytesIO(body)) as resp:
            assert resp.status == 401
    assert upstream.saw("refused-upload") == []
