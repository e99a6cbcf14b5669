"""Real Redis for the cache's integration tests.

redis_url        the session stack's Redis (`infra.redis_url`)
redis            a client on it, closed after the test
prefix           a key prefix no other test uses; its keys are deleted afterwards
throwaway_redis  a private redis-server on a free port, for tests that kill it
spawn_peer       starts `peer.py` (another process with its own cache) and talks to it
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from bookvault.config import Settings

PEER = Path(__file__).with_name("peer.py")


@pytest.fixture(scope="session")
def redis_url(infra: Settings) -> str:
    if infra.redis_url is None:
        raise RuntimeError("the test stack started without Redis; the cache tests need it")
    return infra.redis_url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    name = f"cachetest-{uuid.uuid4().hex[:10]}"
    yield name
    client = Redis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(match=f"{name}:*", count=500)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ThrowawayRedis:
    """A redis-server this test owns: it may kill and restart it."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self._binary = binary
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()
            self._process = None


@pytest.fixture
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    server.start()
    try:
        yield server
    finally:
        server.kill()


class Peer:
    """Another Python process running `peer.py`: one JSON command per line in, one
    JSON answer per line out."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def ask(self, command: dict[str, Any], wait: float = 20.0) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()
        return await self.read(wait)

    async def read(self, wait: float = 20.0) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), wait)
        if not line:
            raise RuntimeError(f"peer exited with {await self.process.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()

    async def close(self) -> None:
        self.kill()
        await self.process.wait()


SpawnPeer = Callable[..., Awaitable[Peer]]


@pytest.fixture
async def spawn_peer() -> AsyncIterator[SpawnPeer]:
    peers: list[Peer] = []

    async def spawn(*args: str) -> Peer:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(PEER), *args, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        peer = Peer(process)
        peers.append(peer)
        ready = await peer.read()
        assert ready == {"ready": True}
        return peer

    yield spawn
    for peer in peers:
        await peer.close()
