"""A minimal HTTP/1.1 client connection for load generation.

aiohttp spends ~100+ µs of CPU per request; on a 2-core machine that would
steal most of a core from the system under test. This client writes a
pre-encoded request and parses only what a benchmark needs (status, body
size), on a keep-alive connection, one request at a time (no pipelining,
like wrk and real browsers).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import cast

__all__ = ["ConnectionClosed", "Http1Connection", "Response", "encode_request"]


class ConnectionClosed(ConnectionError):
    """The server closed the connection before a whole response arrived."""


class ProtocolViolation(ConnectionError):
    """The server sent something that is not an HTTP/1.1 response."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body_bytes: int
    keep_alive: bool
    # Only kept when asked for (scenarios that learn from responses); otherwise b"".
    body: bytes = b""


def encode_request(
    method: str, host: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in (headers or {}).items():
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} contains a line break")
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Http1Connection(asyncio.Protocol):
    __slots__ = ("_buffer", "_closed", "_keep_body", "_transport", "_waiter")

    def __init__(self) -> None:
        self._keep_body = False
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Response] | None = None
        self._closed = False

    @classmethod
    async def open(cls, host: str, port: int) -> Http1Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, host, port)
        return protocol

    @property
    def usable(self) -> bool:
        return not self._closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_connection over TCP always hands us a full Transport.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionClosed(str(exc) if exc else "server closed the connection"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is None or self._waiter.done():
            return
        try:
            response = self._parse()
        except ProtocolViolation as exc:
            self._waiter.set_exception(exc)
            self.close()
            return
        if response is not None:
            self._waiter.set_result(response)

    async def request(self, payload: bytes, *, keep_body: bool = False) -> Response:
        if self._closed or self._transport is None:
            raise ConnectionClosed("connection is closed")
        self._keep_body = keep_body
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(payload)
        response = await self._waiter
        if not response.keep_alive:
            self.close()
        return response

    def close(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.close()

    def _parse(self) -> Response | None:
        buffer = self._buffer
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        if not buffer.startswith(b"HTTP/1."):
            raise ProtocolViolation(f"not an HTTP response: {bytes(buffer[:40])!r}")
        status = int(buffer[9:12])
        head = bytes(buffer[:head_end]).lower()
        body_start = head_end + 4
        keep_alive = b"\r\nconnection: close" not in head
        length_at = head.find(b"\r\ncontent-length:")
        if length_at >= 0:
            line_end = head.find(b"\r\n", length_at + 2)
            length = int(head[length_at + 17 : line_end if line_end >= 0 else None])
            if len(buffer) - body_start < length:
                return None
            body = bytes(buffer[body_start : body_start + length]) if self._keep_body else b""
            del buffer[: body_start + length]
            return Response(status, length, keep_alive, body)
        if b"\r\ntransfer-encoding: chunked" in head:
            return self._parse_chunked(body_start, status, keep_alive)
        if status in (204, 304) or 100 <= status < 200:
            del buffer[:body_start]
            return Response(status, 0, keep_alive)
        raise ProtocolViolation("response has neither Content-Length nor chunked encoding")

    def _parse_chunked(self, position: int, status: int, keep_alive: bool) -> Response | None:
        buffer = self._buffer
        size_total = 0
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                return None
            size = int(bytes(buffer[position:line_end]).split(b";")[0], 16)
            chunk_end = line_end + 2 + size + 2
            if len(buffer) < chunk_end:
                return None
            size_total += size
            position = chunk_end
            if size == 0:
                del buffer[:position]
                return Response(status, size_total, keep_alive)
