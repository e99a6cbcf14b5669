"""A real gateway (granian subprocess, as `bookvault up` runs it) in front of
upstreams the tests control: an aiohttp echo server in the test process, and a
port nobody listens on."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from tests.support.processes import Process, free_port

from bookvault.auth import Role, TokenCodec
from bookvault.config import Settings

JWT_KEY = "integration-test-signing-key-0123456789"
CODEC = TokenCodec(JWT_KEY)
MAX_BODY_BYTES = 64 * 1024
UPSTREAM_TIMEOUT_S = 0.5


# --- the upstream the tests control -----------------------------------------


@dataclasses.dataclass(frozen=True)
class Seen:
    method: str
    target: str  # raw path and query, as the upstream received them
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


class EchoUpstream:
    """Answers every request with what it received, and remembers it.

    A few paths behave differently, so one server can play every upstream role:
    `/slow` never answers on its own, `/hop-response` sends hop-by-hop headers,
    `/large-chunked` and `/large-sized` send 256 KiB bodies, `/truncated` breaks
    off half way through one.
    """

    LARGE = bytes(range(256)) * 1024

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.release_slow = asyncio.Event()
        self._server: TestServer | None = None

    @property
    def port(self) -> int:
        if self._server is None or self._server.port is None:
            raise RuntimeError("the upstream is not started")
        return self._server.port

    def saw(self, path_part: str) -> list[Seen]:
        return [seen for seen in self.seen if path_part in seen.target]

    async def start(self) -> None:
        app = web.Application(client_max_size=4 * MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()

    async def stop(self) -> None:
        self.release_slow.set()
        if self._server is not None:
            await self._server.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        self.seen.append(Seen(request.method, request.raw_path, headers, body))
        tail = request.path.rsplit("/", 1)[-1]
        if tail == "slow":
            await self.release_slow.wait()
        if tail == "hop-response":
            return web.Response(
                text="hop",
                headers={
                    "Connection": "keep-alive, X-Upstream-Secret",
                    "X-Upstream-Secret": "internal",
                    "Keep-Alive": "timeout=5",
                    "Proxy-Authenticate": "Basic",
                    "X-Upstream-Public": "visible",
                },
            )
        if tail == "large-sized":
            return web.Response(body=self.LARGE, content_type="application/octet-stream")
        if tail == "truncated":
            # Promises the large body, sends half of it, then drops the connection.
            response = web.StreamResponse(headers={"Content-Length": str(len(self.LARGE))})
            await response.prepare(request)
            await response.write(self.LARGE[: len(self.LARGE) // 2])
            assert request.transport is not None
            request.transport.close()
            return response
        if tail == "large-chunked":
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for offset in range(0, len(self.LARGE), 32 * 1024):
                await response.write(self.LARGE[offset : offset + 32 * 1024])
            await response.write_eof()
            return response
        return web.json_response(
            {
                "method": request.method,
                "target": request.raw_path,
                "headers": headers,
                "body_length": len(body),
            }
        )


# --- the gateway under test ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


class Gateway(Process):
    @staticmethod
    def bearer(sub: str, role: Role = "member", ttl_s: int = 3600) -> dict[str, str]:
        """An Authorization header signed with the gateway's key."""
        return {"Authorization": f"Bearer {CODEC.sign(sub, role, ttl_s)}"}

    async def raw(self, head: bytes, body: bytes = b"") -> RawResponse:
        """Send bytes exactly as given, for what a client library would tidy up.
        The head must say `Connection: close`: the answer is read to the end."""
        reader, writer = await asyncio.open_connection(self.settings.host, self.port)
        try:
            writer.write(head + body)
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), timeout=15)
        finally:
            writer.close()
        head_bytes, _, payload = data.partition(b"\r\n\r\n")
        status_line, *lines = head_bytes.decode("latin-1").split("\r\n")
        headers = [
            (name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in lines)
        ]
        return RawResponse(int(status_line.split()[1]), headers, payload)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="module")
async def upstream() -> AsyncIterator[EchoUpstream]:
    server = EchoUpstream()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
def dead_port() -> int:
    return free_port()


def gateway_settings(upstream: EchoUpstream, dead_port: int, **overrides: Any) -> Settings:
    """catalog and accounts → the echo upstream; borrowing → a port nobody listens on."""
    base = Settings(
        gateway_port=free_port(),
        catalog_port=upstream.port,
        accounts_port=upstream.port,
        borrowing_port=dead_port,
        jwt_secret=JWT_KEY,
        max_body_bytes=MAX_BODY_BYTES,
        upstream_timeout_s=UPSTREAM_TIMEOUT_S,
        upstream_connect_timeout_s=UPSTREAM_TIMEOUT_S,
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture(scope="module")
async def gateway(upstream: EchoUpstream, dead_port: int, workdir: Path) -> AsyncIterator[Gateway]:
    async with Gateway.running("gateway", [gateway_settings(upstream, dead_port)], workdir) as [started]:
        yield started


@pytest.fixture(scope="module")
async def trusting_gateway(upstream: EchoUpstream, dead_port: int, workdir: Path) -> AsyncIterator[Gateway]:
    """A gateway that believes X-Forwarded-For from loopback peers (the tests' own address)."""
    settings = gateway_settings(upstream, dead_port, trusted_proxies=("127.0.0.0/8",))
    async with Gateway.running("gateway", [settings], workdir) as [started]:
        yield started


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session
