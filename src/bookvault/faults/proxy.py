"""An asyncio TCP proxy with switchable toxics.

    async with FaultProxy(upstream_port=8081) as proxy:
        settings = replace(settings, catalog_url=proxy.url)
        proxy.set(Latency(ms=2000))      # catalog is slow
        proxy.set(Outage())              # catalog is down
        proxy.clear()                    # healthy again

The proxy runs in the caller's event loop, so a test changes faults with plain
method calls. It counts connections and (for HTTP) requests forwarded, which is
how tests check "upstream attempts <= 1.2 x requests".
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from types import TracebackType

from bookvault.faults.toxics import HttpErrors, Latency, Outage, ResetPeer, Timeout, Toxic

_CHUNK = 65536
_HEAD_LIMIT = 64 * 1024


class FaultProxy:
    def __init__(
        self, upstream_port: int, upstream_host: str = "127.0.0.1", listen_port: int = 0, seed: int = 1
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self._listen_port = listen_port
        self._toxics: dict[type, Toxic] = {}
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._random = random.Random(seed)
        self.connections_accepted = 0
        self.requests_forwarded = 0
        self.requests_failed_by_toxic = 0

    # --- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._listen_port)
        self._listen_port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._cut_all()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._listen_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listen_port}"

    # --- faults -------------------------------------------------------------

    def set(self, toxic: Toxic) -> None:
        """Add a toxic (replacing one of the same kind)."""
        self._toxics[type(toxic)] = toxic
        if isinstance(toxic, Outage):
            self._cut_all()

    def clear(self) -> None:
        self._toxics.clear()

    def _get(self, kind: type) -> Toxic | None:
        return self._toxics.get(kind)

    def _cut_all(self) -> None:
        for writer in list(self._writers):
            _reset(writer)

    # --- connection handling -----------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:  # start_server always runs a handler in a task
            self._connections.add(task)
        self._writers.add(writer)
        self.connections_accepted += 1
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._connections.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._get(Outage) is not None:
            _reset(writer)
            return
        reset = self._get(ResetPeer)
        if isinstance(reset, ResetPeer):
            await asyncio.sleep(reset.after_ms / 1000)
            _reset(writer)
            return
        if self._get(Timeout) is not None:
            # Read and drop until the client gives up; never answer.
            while await reader.read(_CHUNK):
                pass
            return
        if self._get(HttpErrors) is not None:
            await self._serve_http(reader, writer)
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(
            self.upstream_host, self.upstream_port
        )
        self._writers.add(upstream_writer)
        try:
            await asyncio.gather(
                self._pipe(reader, upstream_writer, delay=False),
                self._pipe(upstream_reader, writer, delay=True),
            )
        finally:
            self._writers.discard(upstream_writer)
            upstream_writer.close()

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, delay: bool) -> None:
        while data := await source.read(_CHUNK):
            if delay:
                await self._delay()
            if self._get(Outage) is not None:
                raise ConnectionResetError("outage")
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()

    async def _delay(self) -> None:
        latency = self._get(Latency)
        if isinstance(latency, Latency):
            jitter = self._random.uniform(-latency.jitter_ms, latency.jitter_ms) if latency.jitter_ms else 0.0
            await asyncio.sleep(max(0.0, latency.ms + jitter) / 1000)

    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request at a time: fail it here, or forward it on a fresh
        upstream connection and relay the whole response."""
        while True:
            request = await _read_http_message(reader)
            if request is None:
                return
            toxic = self._get(HttpErrors)
            if isinstance(toxic, HttpErrors) and self._random.random() < toxic.share:
                self.requests_failed_by_toxic += 1
                retry = f"Retry-After: {toxic.retry_after_s}\r\n" if toxic.retry_after_s is not None else ""
                body = b'{"title":"injected fault"}'
                writer.write(
                    f"HTTP/1.1 {toxic.status} Injected\r\nContent-Type: application/problem+json\r\n"
                    f"{retry}Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                continue
            self.requests_forwarded += 1
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
            try:
                upstream_writer.write(request)
                await upstream_writer.drain()
                await self._delay()
                response = await _read_http_message(upstream_reader)
                if response is None:
                    raise ConnectionResetError("upstream closed without a response")
                writer.write(response)
                await writer.drain()
            finally:
                upstream_writer.close()


async def _read_http_message(reader: asyncio.StreamReader) -> bytes | None:
    """Read one HTTP/1.1 message framed by Content-Length (or none)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ConnectionResetError("connection closed mid-message") from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise ConnectionResetError("message head too large") from exc
    if len(head) > _HEAD_LIMIT:
        raise ConnectionResetError("message head too large")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"transfer-encoding":
            raise ConnectionResetError("chunked messages are not supported by the HTTP error toxic")
    body = await reader.readexactly(length) if length else b""
    return head + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN, as a crashed peer or middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
