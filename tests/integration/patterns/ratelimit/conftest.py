"""Fixtures for the rate limiter against real Redis.

redis_url       the session stack's Redis (tests/conftest.py `infra`)
redis_client    a client on it without hidden retries, closed after the test
prefix          a key prefix unique to the test, so runs never share state
own_redis       a throwaway redis-server of this test's own, to stop, pause or flush
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bookvault.config import Settings


def connect(url: str) -> Redis:
    # No retries inside redis-py: the limiter bounds each call and decides itself.
    return Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1)


@pytest.fixture(scope="session")
def redis_url(infra: Settings) -> str:
    if infra.redis_url is None:
        pytest.fail("the test stack started no Redis")
    return infra.redis_url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = connect(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"rltest-{uuid.uuid4().hex[:12]}"


class RedisProcess:
    """A redis-server this test owns: no persistence, on a free port."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process = subprocess.Popen(
            [
                "redis-server",
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
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)

    def pause(self) -> None:
        """Keep connections open but answer nothing, as a hung server does."""
        os.kill(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self._process.poll() is None:
            os.kill(self._process.pid, signal.SIGCONT)


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    server = RedisProcess()
    try:
        yield server
    finally:
        server.resume()
        server.stop()
