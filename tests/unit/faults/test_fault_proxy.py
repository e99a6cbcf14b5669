"""The fault proxy against a real local HTTP server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bookvault.faults import FaultProxy, HttpErrors, Latency, Outage, ResetPeer, Timeout


@pytest.fixture
async def upstream() -> AsyncIterator[int]:
    async def hello(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=b"hello:" + body)

    app = web.Application()
    app.add_routes([web.get("/", hello), web.post("/", hello)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


@pytest.fixture
async def proxy(upstream: int) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(upstream) as running:
        yield running


async def fetch(url: str, timeout_s: float = 5.0, data: bytes | None = None) -> tuple[int, bytes]:
    # A fresh session per call: each call is one new connection through the proxy.
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
        session.request("POST" if data else "GET", url, data=data) as response,
    ):
        return response.status, await response.read()


async def test_healthy_proxy_forwards(proxy: FaultProxy) -> None:
    assert await fetch(proxy.url, data=b"x") == (200, b"hello:x")
    assert proxy.connections_accepted == 1


async def test_outage_refuses_and_recovers(proxy: FaultProxy) -> None:
    proxy.set(Outage())
    with pytest.raises(aiohttp.ClientError):
        await fetch(proxy.url)
    proxy.clear()
    assert (await fetch(proxy.url))[0] == 200


async def test_reset_peer_breaks_the_connection(proxy: FaultProxy) -> None:
    proxy.set(ResetPeer())
    with pytest.raises(aiohttp.ClientError):
        await fetch(proxy.url)


async def test_timeout_never_answers(proxy: FaultProxy) -> None:
    proxy.set(Timeout())
    with pytest.raises(asyncio.TimeoutError):
        await fetch(proxy.url, timeout_s=0.2)


async def test_latency_delays_the_response(proxy: FaultProxy) -> None:
    proxy.set(Latency(ms=300))
    # Observable without timing the call: a client deadline below the latency fails.
    with pytest.raises(asyncio.TimeoutError):
        await fetch(proxy.url, timeout_s=0.1)
    assert (await fetch(proxy.url, timeout_s=5))[0] == 200


async def test_http_errors_fail_a_share_of_requests(proxy: FaultProxy) -> None:
    proxy.set(HttpErrors(share=0.5, status=503, retry_after_s=2))
    statuses = [(await fetch(proxy.url))[0] for _ in range(200)]
    failed = statuses.count(503)
    assert failed == proxy.requests_failed_by_toxic
    assert 200 - failed == proxy.requests_forwarded
    assert 70 <= failed <= 130


def test_http_error_share_is_validated() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        HttpErrors(share=1.5)
