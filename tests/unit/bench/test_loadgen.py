"""The load generator against a real local HTTP server: counts, statuses and
sizes must be exact; timing is never asserted."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bookvault.bench.http1 import Http1Connection, encode_request
from bookvault.bench.loadgen import LoadSpec, run

BODY = b'{"id": 1, "title": "Dune"}' * 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def server() -> AsyncIterator[int]:
    async def book(_request: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="application/json")

    async def missing(_request: web.Request) -> web.Response:
        return web.Response(status=404, body=b"{}")

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"abc", b"defgh", b"ij"):
            await response.write(part)
        await response.write_eof()
        return response

    app = web.Application()
    app.add_routes([web.get("/book", book), web.get("/missing", missing), web.get("/chunked", chunked)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield port
    await runner.cleanup()


async def test_open_loop_sends_exactly_rate_times_duration(server: int) -> None:
    request = encode_request("GET", f"127.0.0.1:{server}", "/book")
    spec = LoadSpec("127.0.0.1", server, "open", duration_s=0.5, connections=4, rate=200)
    result = await run(spec, lambda: request)
    assert result.requests == 100
    assert result.statuses == {200: 100}
    assert result.errors == {}
    assert result.bytes_per_response == len(BODY)
    assert set(result.percentiles_ms()) == {"p50", "p90", "p99", "p99.9", "max"}


async def test_closed_loop_counts_every_status(server: int) -> None:
    requests = iter(
        [encode_request("GET", f"127.0.0.1:{server}", "/book"), encode_request("GET", "x", "/missing")]
        * 10_000
    )
    spec = LoadSpec("127.0.0.1", server, "closed", duration_s=0.3, connections=2)
    result = await run(spec, lambda: next(requests))
    assert result.requests > 0
    assert sum(result.statuses.values()) == result.requests
    assert abs(result.statuses[200] - result.statuses[404]) <= 2


async def test_refused_connections_are_errors_not_crashes() -> None:
    port = free_port()
    spec = LoadSpec("127.0.0.1", port, "open", duration_s=0.1, connections=2, rate=100)
    result = await run(spec, lambda: encode_request("GET", "x", "/"))
    assert result.requests == 10
    assert result.errors == {"ConnectionRefusedError": 10}
    assert result.percentiles_ms() == {}


async def test_chunked_bodies_are_measured(server: int) -> None:
    connection = await Http1Connection.open("127.0.0.1", server)
    try:
        first = await connection.request(encode_request("GET", "x", "/chunked"))
        second = await connection.request(encode_request("GET", "x", "/book"))
    finally:
        connection.close()
    assert (first.status, first.body_bytes) == (200, 10)
    assert (second.status, second.body_bytes) == (200, len(BODY))


def test_open_loop_needs_a_rate() -> None:
    with pytest.raises(ValueError, match="rate above 0"):
        asyncio.run(run(LoadSpec("127.0.0.1", 1, "open", 1, 1), lambda: b""))


class _Counting:
    """An observing source: keeps the bodies of the responses it caused."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.seen: list[tuple[int, bytes]] = []

    def __call__(self) -> bytes:
        return self.request

    def observe(self, status: int, body: bytes) -> None:
        self.seen.append((status, body))


async def test_observing_sources_see_every_response_body(server: int) -> None:
    source = _Counting(encode_request("GET", "x", "/book"))
    result = await run(LoadSpec("127.0.0.1", server, "open", duration_s=0.2, connections=2, rate=50), source)
    assert result.requests == 10
    assert source.seen == [(200, BODY)] * 10
