"""The catalog client turns every HTTP answer and transport failure into one of
its own exceptions. A tiny in-process aiohttp server plays the catalog."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bookvault.auth import TokenCodec
from bookvault.borrowing.catalog_client import (
    BookNotFound,
    CatalogClient,
    CatalogProtocolError,
    CatalogUnavailable,
    NoCopyAvailable,
    ServiceToken,
)
from bookvault.patterns.clock import FakeClock

KEY = "k" * 40


class ScriptedCatalog:
    """Answers the next reserve/release with a chosen status and body."""

    def __init__(self) -> None:
        self.status = 201
        self.body = b""
        self.hang = asyncio.Event()
        self.hanging = False
        self.seen: list[tuple[str, str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.raw_path, request.headers.get("Authorization", ""), await request.text()))
        if self.hanging:
            await self.hang.wait()
        return web.Response(status=self.status, body=self.body, content_type="application/json")


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedCatalog, str]]:
    catalog = ScriptedCatalog()
    app = web.Application()
    app.router.add_post("/internal/books/{book_id}/reservations", catalog.handle)
    app.router.add_post("/internal/reservations/{rid}/release", catalog.handle)
    app.router.add_get("/healthz", catalog.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield catalog, f"http://127.0.0.1:{port}"
    finally:
        catalog.hang.set()
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def client_for(session: aiohttp.ClientSession, url: str, timeout_s: float = 5.0) -> CatalogClient:
    return CatalogClient(session, url, ServiceToken(TokenCodec(KEY)), timeout_s)


async def test_reserve_sends_a_service_token_and_reads_the_reservation(
    scripted: tuple[ScriptedCatalog, str], session: aiohttp.ClientSession
) -> None:
    catalog, url = scripted
    catalog.body = b'{"reservation_id": "loan-1", "book_id": 3, "state": "reserved"}'
    reservation = await client_for(session, url).reserve(3, "loan-1")
    assert reservation.reservation_id == "loan-1"
    path, authorization, body = catalog.seen[0]
    assert path == "/internal/books/3/reservations"
    assert body == '{"reservation_id":"loan-1"}'
    principal = TokenCodec(KEY).verify_header(authorization)
    assert principal is not None
    assert (principal.subject, principal.role) == ("borrowing", "service")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (409, NoCopyAvailable),
        (404, BookNotFound),
        (500, CatalogUnavailable),
        (503, CatalogUnavailable),
        (401, CatalogProtocolError),
        (422, CatalogProtocolError),
    ],
)
async def test_reserve_statuses_become_exceptions(
    scripted: tuple[ScriptedCatalog, str],
    session: aiohttp.ClientSession,
    status: int,
    error: type[Exception],
) -> None:
    catalog, url = scripted
    catalog.status = status
    catalog.body = b'{"type": "about:blank", "status": %d}' % status
    with pytest.raises(error):
        await client_for(session, url).reserve(3, "loan-1")


async def test_a_2xx_with_an_unreadable_body_is_a_protocol_error(
    scripted: tuple[ScriptedCatalog, str], session: aiohttp.ClientSession
) -> None:
    catalog, url = scripted
    catalog.body = b"<html>"
    with pytest.raises(CatalogProtocolError):
        await client_for(session, url).reserve(3, "loan-1")


async def test_release_escapes_the_reservation_id(
    scripted: tuple[ScriptedCatalog, str], session: aiohttp.ClientSession
) -> None:
    catalog, url = scripted
    catalog.status = 200
    await client_for(session, url).release("a/b c")
    assert catalog.seen[0][0] == "/internal/reservations/a%2Fb%20c/release"
    assert catalog.seen[0][2] == ""


async def test_a_slow_catalog_times_out_as_unavailable(
    scripted: tuple[ScriptedCatalog, str], session: aiohttp.ClientSession
) -> None:
    catalog, url = scripted
    catalog.hanging = True
    client = client_for(session, url, timeout_s=0.05)
    with pytest.raises(CatalogUnavailable, match="Timeout"):
        await client.reserve(3, "loan-1")
    assert client.reachable is False


async def test_a_closed_port_is_unavailable(session: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = client_for(session, f"http://127.0.0.1:{port}")
    with pytest.raises(CatalogUnavailable):
        await client.release("loan-1")
    with pytest.raises(CatalogUnavailable):
        await client.ping()
    assert client.reachable is False


def test_the_service_token_is_reused_until_near_expiry() -> None:
    clock = FakeClock()
    token = ServiceToken(TokenCodec(KEY), ttl_s=300, refresh_before_s=60, clock=clock)
    first = token.authorization()
    clock.advance(200)
    assert token.authorization() == first
    clock.advance(41)
    assert token.authorization() != first
