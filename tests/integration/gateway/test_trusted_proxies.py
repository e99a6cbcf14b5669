"""Behind a trusted proxy the client is the right-most untrusted X-Forwarded-For hop."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.integration.gateway.conftest import EchoUpstream, Gateway


async def test_the_vouched_chain_reaches_the_service(
    trusting_gateway: Gateway, upstream: EchoUpstream
) -> None:
    # The test client connects from 127.0.0.1, which this gateway trusts as a proxy.
    for marker, claimed in [(b"xff-1", b"192.0.2.1"), (b"xff-2", b"198.51.100.99, 192.0.2.200")]:
        answer = await trusting_gateway.raw(
            b"GET /api/catalog/v1/books/" + marker + b" HTTP/1.1\r\nHost: gw\r\n"
            b"X-Forwarded-For: " + claimed + b", 203.0.113.7\r\n"
            b"X-Forwarded-Proto: https\r\n"
            b"X-Forwarded-Host: books.example\r\n"
            b"Connection: close\r\n\r\n"
        )
        assert answer.status == 200
        [seen] = upstream.saw(marker.decode())
        # Whatever the client claims left of its real address is dropped, so rotating it changes nothing.
        assert seen.header("x-forwarded-for") == ["203.0.113.7, 127.0.0.1"]
        assert seen.header("x-forwarded-proto") == ["https"]
        assert seen.header("x-forwarded-host") == ["books.example"]


async def test_an_untrusted_gateway_ignores_the_same_claims(gateway: Gateway, upstream: EchoUpstream) -> None:
    answer = await gateway.raw(
        b"GET /api/catalog/v1/books/xff-untrusted HTTP/1.1\r\nHost: gw\r\n"
        b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n"
        b"Connection: close\r\n\r\n"
    )
    assert answer.status == 200
    [seen] = upstream.saw("xff-untrusted")
    assert seen.header("x-forwarded-for") == ["127.0.0.1"]
    assert seen.header("x-forwarded-proto") == ["http"]
