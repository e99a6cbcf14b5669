"""The last stage: send the exchange to its upstream and relay the answer.

Small responses with a Content-Length are read whole and sent in one message
(the common case: JSON documents); anything else is streamed back chunk by
chunk. Either way the upstream's status and end-to-end headers pass through,
Content-Length included.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from urllib.parse import quote_from_bytes

import aiohttp
from yarl import URL

from bookvault.gateway.asgi import Scope
from bookvault.gateway.exchange import Exchange, Reply
from bookvault.gateway.headers import filter_response_headers
from bookvault.gateway.upstream_errors import UPSTREAM_ERRORS, problem_for

__all__ = ["UpstreamProxy", "upstream_target"]

# Bigger bodies are streamed rather than held, so memory per request stays bounded.
BUFFER_LIMIT_BYTES = 64 * 1024
_BODILESS_STATUS = frozenset({204, 304})
# Everything printable in ASCII passes through as it came, percent-escapes included.
_PASS_THROUGH = "".join(chr(c) for c in range(0x21, 0x7F))


class UpstreamProxy:
    """Holds the client session (opened in the lifespan) and the per-request timeouts."""

    __slots__ = ("_timeout", "session")

    def __init__(self, total_timeout_s: float, connect_timeout_s: float) -> None:
        self.session: aiohttp.ClientSession | None = None
        # sock_connect, not connect: waiting for a free pooled connection is
        # queueing, bounded by the total; only the TCP handshake has its own limit.
        self._timeout = aiohttp.ClientTimeout(total=total_timeout_s, sock_connect=connect_timeout_s)

    async def __call__(self, exchange: Exchange) -> Reply:
        session = self.session
        if session is None:
            raise RuntimeError("the gateway's lifespan has not started: the upstream client is not open")
        route = exchange.route
        url = URL(route.origin + upstream_target(exchange.scope), encoded=True)
        try:
            response = await session.request(
                exchange.method,
                url,
                headers=_upstream_headers(exchange),
                data=exchange.body or None,
                allow_redirects=False,
                timeout=self._timeout,
            )
        except UPSTREAM_ERRORS as exc:
            raise problem_for(route.service, exc) from exc
        headers = filter_response_headers(response.raw_headers)
        status = response.status
        if exchange.method == "HEAD" or status in _BODILESS_STATUS:
            response.release()
            return Reply(status, headers)
        length = response.content_length
        if length is not None and length <= BUFFER_LIMIT_BYTES:
            try:
                body = await response.read()
            except UPSTREAM_ERRORS as exc:
                raise problem_for(route.service, exc) from exc
            finally:
                response.release()
            return Reply(status, headers, body)
        return Reply(status, headers, stream=_relay(response))


def upstream_target(scope: Scope) -> str:
    """Path and query exactly as the client sent them (the raw path, not the decoded one)."""
    raw_path = scope.get("raw_path")
    if not isinstance(raw_path, bytes) or not raw_path:
        path = scope["path"]
        raw_path = path.encode("utf-8") if isinstance(path, str) else b"/"
    target = raw_path.decode("ascii") if raw_path.isascii() else quote_from_bytes(raw_path, _PASS_THROUGH)
    query = scope.get("query_string")
    if isinstance(query, bytes) and query:
        target += "?" + (query.decode("ascii") if query.isascii() else quote_from_bytes(query, _PASS_THROUGH))
    return target


def _upstream_headers(exchange: Exchange) -> list[tuple[str, str]]:
    head = exchange.head
    proto = exchange.scope.get("scheme", "http")
    host = head.host
    if exchange.peer_trusted:
        # Only a trusted proxy's word on the original scheme and host is taken.
        if head.forwarded_proto in (b"http", b"https"):
            proto = head.forwarded_proto.decode("ascii")
        if head.forwarded_host:
            host = head.forwarded_host
    headers = head.forward.copy()
    headers.append(("x-request-id", exchange.request_id.decode("ascii")))
    headers.append(("x-forwarded-for", exchange.forwarded_for))
    headers.append(("x-forwarded-proto", str(proto)))
    if host:
        headers.append(("x-forwarded-host", host.decode("latin-1")))
    return headers


async def _relay(response: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    finally:
        response.release()
