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
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from tests.support.redis_server import OwnRedis, running_redis

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


@pytest.fixture
def throwaway_redis() -> Iterator[OwnRedis]:
    with running_redis() as server:
        yield server


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
