"""A redis-server a test owns, apart from the session's shared one, so it may kill,
restart or pause it: no persistence, on a free port of 127.0.0.1.

    with running_redis() as server:  started, and killed when the block ends
    server.url, server.port
    server.kill()                SIGKILL, as a crash; `start()` brings it back, empty
    server.pause(), resume()     keeps connections open but answers nothing, as a hung server
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import redis.asyncio as aioredis

from bookvault.config import Settings

from .processes import free_port

READY_DEADLINE_S = 10.0


class OwnRedis:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self._binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [self._binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no"]
        self._process = process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + READY_DEADLINE_S
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            if process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.02)  # waiting for the server to listen

    def kill(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()
            self._process = None

    def pause(self) -> None:
        """Keep connections open but answer nothing, as a hung server does."""
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGCONT)


@contextlib.contextmanager
def running_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    try:
        yield server
    finally:
        server.kill()


@contextlib.asynccontextmanager
async def redis_client(settings: Settings) -> AsyncIterator[Any]:
    """A client on `settings.redis_url` (the session's Redis for `infra` or `system`)."""
    assert settings.redis_url is not None
    client = aioredis.from_url(settings.redis_url)
    try:
        yield client
    finally:
        await client.aclose()
