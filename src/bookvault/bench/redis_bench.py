"""What the Redis micro-benchmarks (`cache_bench`, `limiter_bench`) share: a
throwaway redis-server when no `--redis-url` is given, the round-trip counter, and
the command line around a run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from redis.asyncio.connection import AbstractConnection

from bookvault.patterns import pipelined_redis

T = TypeVar("T")


@contextlib.contextmanager
def own_redis() -> Iterator[str]:
    """A redis-server on a free port, without persistence; yields its URL, killed at the end."""
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed; pass --redis-url")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"redis-server on port {port} did not start")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def count_round_trips() -> Iterator[list[int]]:
    """Count what every contender writes to Redis through redis-py (all of them use
    it) or through our pipelined client: one write per command, or per pipeline,
    i.e. one per round trip."""
    counter = [0]
    original = AbstractConnection.send_packed_command
    original_pipelined = pipelined_redis._Connection.send

    async def counting(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        counter[0] += 1
        await original(self, command, check_health)

    def counting_pipelined(
        self: pipelined_redis._Connection, packed: bytes, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[Any]:
        counter[0] += 1
        return original_pipelined(self, packed, loop)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    pipelined_redis._Connection.send = counting_pipelined  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
        pipelined_redis._Connection.send = original_pipelined  # type: ignore[method-assign]


def argument_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The benchmark's command line, named after `module`, described by the first line
    of `doc`, with `--redis-url`."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.split("\n")[0])
    parser.add_argument(
        "--redis-url", help="a Redis to use (its current database is flushed); default: start one"
    )
    return parser


def say(line: str) -> None:
    """Progress, to stderr: stdout carries only the table."""
    print(line, file=sys.stderr, flush=True)


def run_on_redis(redis_url: str | None, run: Callable[[str], Coroutine[Any, Any, T]]) -> T:
    """`run(url)` in a fresh event loop, on `redis_url` or else on a throwaway redis-server."""
    with contextlib.ExitStack() as stack:
        url = redis_url or stack.enter_context(own_redis())
        return asyncio.run(run(url))
