"""Requests through a real gateway process to an upstream that echoes what it got."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import aiohttp
from yarl import URL

if TYPE_CHECKING:
    from tests.integration.gateway.conftest import EchoUpstream, Gateway

HEX_ID_LENGTH = 32


async def test_path_and_query_reach_the_service_unchanged(
    gateway: Gateway, upstream: EchoUpstream, client: aiohttp.ClientSession
) -> None:
    target = "/api/catalog/v1/books/caf%C3%A9%2Fx?q=war%20and%20peace&genre=a+b&genre=c"
    async with client.get(URL(gateway.url + target, encoded=True)) as resp:
        assert resp.status == 200
        echoed = await resp.json()
    assert echoed["target"] == target
    host = echoed_header(echoed, "host")
    assert host == [f"127.0.0.1:{upstream.port}"]


async def test_internal_paths_and_dot_segments_never_reach_a_service(
    gateway: Gateway, upstream: EchoUpstream
) -> None:
    for target, status in [
        (b"/internal/loans/reconcile", 404),
        (b"/api/catalog/v1/../../internal/loans", 400),
        (b"/api/catalog/v1/%2e%2e/%2e%2e/internal/loans", 400),
    ]:
        answer = await gateway.raw(b"GET " + target + b" HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        assert answer.status == status
        assert answer.header("content-type") == ["application/problem+json"]
    assert upstream.saw("internal") == []


async def test_a_sane_request_id_travels_both_ways(gateway: Gateway, upstream: EchoUpstream) -> None:
    answer = await gateway.raw(
        b"GET /api/catalog/v1/books/rid-sane HTTP/1.1\r\nHost: gw\r\n"
        b"X-Request-Id: trace-42.a_b\r\nConnection: close\r\n\r\n"
    )
    assert answer.status == 200
    assert answer.header("x-request-id") == ["trace-42.a_b"]
    assert upstream.saw("rid-sane")[-1].header("x-request-id") == ["trace-42.a_b"]


async def test_an_unsafe_request_id_is_replaced_consistently(
    gateway: Gateway, upstream: EchoUpstream
) -> None:
    answer = await gateway.raw(
        b"GET /api/catalog/v1/books/rid-bad HTTP/1.1\r\nHost: gw\r\n"
        b"X-Request-Id: <script>alert(1)</script>\r\nConnection: close\r\n\r\n"
    )
    [replaced] = answer.header("x-request-id")
    assert len(replaced) == HEX_ID_LENGTH
    assert upstream.saw("rid-bad")[-1].header("x-request-id") == [replaced]


async def test_hop_by_hop_request_headers_are_not_forwarded(gateway: Gateway, upstream: EchoUpstream) -> None:
    answer = await gateway.raw(
        b"GET /api/catalog/v1/books/hop-request HTTP/1.1\r\n"
        b"Host: books.example\r\n"
        b"Connection: close, X-Client-Secret\r\n"
        b"X-Client-Secret: do-not-forward\r\n"
        b"Keep-Alive: timeout=5\r\n"
        b"TE: trailers\r\n"
        b"Trailer: X-Checksum\r\n"
        b"Proxy-Authorization: Basic cHJveHk6c2VjcmV0\r\n"
        b"Proxy-Connection: keep-alive\r\n"
        b"X-Forwarded-For: 203.0.113.66\r\n"
        b"Forwarded: for=203.0.113.66\r\n"
        b"X-End-To-End: kept\r\n"
        b"\r\n"
    )
    assert answer.status == 200
    received = {name.lower() for name, _ in upstream.saw("hop-request")[-1].headers}
    for name in ("connection", "x-client-secret", "keep-alive", "te", "trailer", "proxy-authorization"):
        assert name not in received
    assert "proxy-connection" not in received
    assert "forwarded" not in received
    seen = upstream.saw("hop-request")[-1]
    assert seen.header("x-end-to-end") == ["kept"]
    # The client's own claim is dropped: the socket peer is who the gateway vouches for.
    assert seen.header("x-forwarded-for") == ["127.0.0.1"]
    assert seen.header("x-forwarded-host") == ["books.example"]
    assert seen.header("x-forwarded-proto") == ["http"]


async def test_hop_by_hop_response_headers_are_not_returned(gateway: Gateway) -> None:
    answer = await gateway.raw(
        b"GET /api/catalog/v1/hop-response HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
    )
    assert answer.status == 200
    assert answer.body == b"hop"
    names = {name.lower() for name, _ in answer.headers}
    assert "x-upstream-secret" not in names
    assert "keep-alive" not in names
    assert "proxy-authenticate" not in names
    assert answer.header("x-upstream-public") == ["visible"]
    assert answer.header("content-length") == ["3"]


async def test_a_body_within_the_limit_is_forwarded_whole(
    gateway: Gateway, upstream: EchoUpstream, client: aiohttp.ClientSession
) -> None:
    body = b'{"title": "' + b"x" * 50_000 + b'"}'
    headers = {**gateway.bearer("1", "admin"), "Content-Type": "application/json"}
    async with client.post(f"{gateway.url}/api/catalog/v1/books?within", data=body, headers=headers) as resp:
        assert resp.status == 200
    [seen] = upstream.saw("within")
    assert seen.body == body
    assert seen.header("content-type") == ["application/json"]
    assert seen.header("content-length") == [str(len(body))]


async def test_a_declared_oversized_body_is_refused_before_it_is_sent(
    gateway: Gateway, upstream: EchoUpstream
) -> None:
    token = gateway.bearer("1", "admin")["Authorization"].encode()
    # Only the head goes out: the gateway must answer from Content-Length alone.
    answer = await gateway.raw(
        b"POST /api/catalog/v1/books?declared-oversized HTTP/1.1\r\nHost: gw\r\n"
        b"Authorization: " + token + b"\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(gateway.settings.max_body_bytes + 1).encode() + b"\r\n"
        b"Connection: close\r\n\r\n"
    )
    assert answer.status == 413
    assert answer.header("content-type") == ["application/problem+json"]
    assert upstream.saw("declared-oversized") == []


async def test_a_chunked_oversized_body_is_refused(gateway: Gateway, upstream: EchoUpstream) -> None:
    token = gateway.bearer("1", "admin")["Authorization"].encode()
    chunk = b"x" * 16 * 1024
    count = gateway.settings.max_body_bytes // len(chunk) + 1
    body = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * count + b"0\r\n\r\n"
    answer = await gateway.raw(
        b"POST /api/catalog/v1/books?chunked-oversized HTTP/1.1\r\nHost: gw\r\n"
        b"Authorization: " + token + b"\r\n"
        b"Transfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n",
        body,
    )
    assert answer.status == 413
    assert upstream.saw("chunked-oversized") == []


async def test_a_chunked_body_within_the_limit_arrives_with_a_length(
    gateway: Gateway, upstream: EchoUpstream
) -> None:
    token = gateway.bearer("1", "admin")["Authorization"].encode()
    answer = await gateway.raw(
        b"POST /api/catalog/v1/books?chunked-small HTTP/1.1\r\nHost: gw\r\n"
        b"Authorization: " + token + b"\r\n"
        b"Transfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n",
        b'5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n',
    )
    assert answer.status == 200
    [seen] = upstream.saw("chunked-small")
    assert seen.body == b'{"a":1}'
    assert seen.header("transfer-encoding") == []
    assert seen.header("content-length") == ["7"]


async def test_large_responses_come_back_intact(
    gateway: Gateway, upstream: EchoUpstream, client: aiohttp.ClientSession
) -> None:
    async with client.get(f"{gateway.url}/api/catalog/v1/large-sized") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len(upstream.LARGE))
        assert await resp.read() == upstream.LARGE
    async with client.get(f"{gateway.url}/api/catalog/v1/large-chunked") as resp:
        assert resp.status == 200
        assert await resp.read() == upstream.LARGE


async def test_head_requests_get_headers_only(
    gateway: Gateway, upstream: EchoUpstream, client: aiohttp.ClientSession
) -> None:
    async with client.head(f"{gateway.url}/api/catalog/v1/large-sized") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len(upstream.LARGE))
        assert await resp.read() == b""


def echoed_header(echoed: dict[str, list[list[str]]], name: str) -> list[str]:
    return [value for key, value in echoed["headers"] if key.lower() == name]


async def test_a_client_sending_an_oversized_body_anyway_reads_the_413(
    gateway: Gateway, upstream: EchoUpstream, client: aiohttp.ClientSession
) -> None:
    body = b"x" * (gateway.settings.max_body_bytes * 16)
    headers = {**gateway.bearer("1", "admin"), "Content-Type": "application/json"}
    for _ in range(3):  # again on the same pooled connection, if the server kept it
        async with client.post(
            f"{gateway.url}/api/catalog/v1/books?sent-anyway", data=body, headers=headers
        ) as r:
            assert r.status == 413
            assert (await r.json())["status"] == 413
    assert upstream.saw("sent-anyway") == []


async def test_an_upload_to_no_route_still_reads_as_404(
    gateway: Gateway, client: aiohttp.ClientSession
) -> None:
    body = io.BytesIO(b"x" * (2 * 1024 * 1024))
    async with client.post(f"{gateway.url}/api/nowhere/v1/things", data=body) as resp:
        assert resp.status == 404
        assert "/api/catalog/v1" in (await resp.json())["detail"]
