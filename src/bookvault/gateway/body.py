"""The request body: read whole within the size limit before going upstream,
or read and thrown away when the gateway answers without it.

Bodies here are small JSON documents, so holding one in memory is cheaper than
streaming it and lets a refused request fail before any upstream work. The
limit is checked twice: on the declared Content-Length up front, and on the
bytes actually received (a chunked body declares nothing).

Why discard at all: most clients write the whole request before reading the
answer, and a server that closes with unread bytes makes the kernel reset the
connection, so the client would see a broken pipe instead of the 401 or 413.
The discarding is bounded in bytes and time; a client that asked
`Expect: 100-continue` has not sent its body yet and is answered at once.
"""

from __future__ import annotations

import asyncio

from bookvault.gateway.asgi import Receive
from bookvault.gateway.exchange import Exchange, GatewayProblem, Handler, Reply
from bookvault.gateway.headers import InboundHead

__all__ = ["DISCARD_LIMIT_BYTES", "BodyReader", "ClientDisconnected", "RequestBody"]

# Beyond this much unwanted body, letting the connection drop is cheaper than reading it.
DISCARD_LIMIT_BYTES = 16 * 1024 * 1024


class ClientDisconnected(Exception):
    """The client went away before its request body arrived."""


class RequestBody:
    """The body as the ASGI server hands it over, and how much of it has arrived."""

    __slots__ = ("_declared", "_receive", "_waits_for_continue", "finished", "received")

    def __init__(self, receive: Receive, head: InboundHead, http_version: str) -> None:
        self._receive = receive
        self._declared = head.content_length
        self._waits_for_continue = head.expects_continue
        self.received = 0
        # HTTP/1.x has a body only when it says so; HTTP/2 frames may carry one regardless.
        may_have_body = head.chunked or http_version == "2" or head.content_length not in (None, b"0")
        self.finished = not may_have_body

    def declared_length(self) -> int | None:
        """The Content-Length, None when absent; a malformed one is a 400 problem."""
        if self._declared is None:
            return None
        if not self._declared.isdigit():
            raise GatewayProblem(400, "Content-Length must be a non-negative integer")
        return int(self._declared)

    async def read(self, limit: int) -> bytes:
        """All of it, or a 413 problem as soon as more than `limit` bytes are announced or arrive."""
        declared = self.declared_length()
        if declared is not None and declared > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        while not self.finished:
            chunk = await self._next()
            if self.received > limit:
                raise _too_large(limit)
            if chunk:
                chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def discard_rest(self, timeout_s: float) -> None:
        """Read and drop what the client is still sending, within bounds; never raises."""
        if self.finished or (self._waits_for_continue and self.received == 0):
            return
        declared = self._declared
        if declared is not None and declared.isdigit() and int(declared) > DISCARD_LIMIT_BYTES:
            return
        try:
            async with asyncio.timeout(timeout_s):
                while not self.finished and self.received <= DISCARD_LIMIT_BYTES:
                    await self._next()
        except (TimeoutError, ClientDisconnected):
            return

    async def _next(self) -> bytes:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.finished = True
            raise ClientDisconnected
        if not message.get("more_body", False):
            self.finished = True
        chunk: bytes = message.get("body", b"")
        self.received += len(chunk)
        return chunk


def _too_large(limit: int) -> GatewayProblem:
    return GatewayProblem(413, f"request bodies are limited to {limit} bytes")


class BodyReader:
    """The pipeline stage: fills `exchange.body`, or answers 413, or 408 when the
    body does not arrive in time (a trickling client must not hold a request forever)."""

    __slots__ = ("_limit", "_timeout_s")

    def __init__(self, limit: int, timeout_s: float) -> None:
        self._limit = limit
        self._timeout_s = timeout_s

    async def __call__(self, exchange: Exchange, call_next: Handler) -> Reply:
        body = exchange.request_body
        if not body.finished:  # the common bodiless GET skips the timer entirely
            try:
                async with asyncio.timeout(self._timeout_s):
                    exchange.body = await body.read(self._limit)
            except TimeoutError:
                raise GatewayProblem(
                    408, f"the request body did not arrive within {self._timeout_s:g} s"
                ) from None
        return await call_next(exchange)
