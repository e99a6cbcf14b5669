"""A lean Redis client for one command per request on a hot path.

redis-py's asyncio client spends about 60 µs of CPU on each command (a pool
checkout, a parser per connection, response callbacks, an asyncio stream read):
on a gateway that decides a rate limit for every request, the client cost more
than everything else the request did. This client keeps ONE connection, writes
each command the moment it is issued (concurrent callers are pipelined on the
socket), and hands replies to callers in the order Redis answers them, which is
the order they were sent. hiredis packs and parses, in C. The saving is
measured in BENCHMARKS.md (`python -m bookvault.bench.limiter_bench`).

What it is for: request/response commands (EVALSHA, GET, HGETALL, ...) on one
database. Not for pub/sub, MONITOR, blocking commands or transactions: those
keep redis-py.

Failure semantics match redis-py's types, so callers handle both clients
alike: a server error raises `ResponseError` (`NoScriptError` for NOSCRIPT); a
lost connection fails every pending call with `ConnectionError`, and the next
call reconnects. A caller that gives up (a timeout around the await) does not
disturb the order: the late reply is read and dropped. Calls beyond
`max_pending` unanswered ones fail at once instead of queueing behind a Redis
that has stopped answering.
"""

from __future__ import annotations

import asyncio
import collections
import urllib.parse
from typing import Any, cast

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

__all__ = ["PipelinedRedis"]


class _Connection(asyncio.Protocol):
    """One socket: writes commands, matches replies to waiters in FIFO order."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self.lost = False

    @property
    def pending(self) -> int:
        return len(self._waiters)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            if not self._waiters:  # a reply nobody asked for: the stream is out of step
                self._fail(RedisConnectionError("unexpected reply from Redis"))
                return
            waiter = self._waiters.popleft()
            if waiter.done():  # its caller gave up; the reply is dropped, order is kept
                continue
            if isinstance(reply, hiredis.ReplyError):
                message = str(reply)
                error = NoScriptError if message.startswith("NOSCRIPT") else ResponseError
                waiter.set_exception(error(message))
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        reason = f"connection to Redis lost: {exc}" if exc else "connection to Redis closed"
        self._fail_waiters(RedisConnectionError(reason))

    def send(self, packed: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
        waiter: asyncio.Future[Any] = loop.create_future()
        self._waiters.append(waiter)
        assert self._transport is not None
        self._transport.write(packed)
        return waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _fail(self, error: Exception) -> None:
        self.lost = True
        self._fail_waiters(error)
        self.close()

    def _fail_waiters(self, error: Exception) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)


class PipelinedRedis:
    """`execute_command(*args)` over one pipelined connection; see the module doc."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        *,
        username: str | None = None,
        password: str | None = None,
        db: int = 0,
        connect_timeout_s: float = 1.0,
        max_pending: int = 10_000,
    ) -> None:
        self._host = host
        self._port = port
        self._hello: list[tuple[Any, ...]] = []
        if password is not None:
            self._hello.append(("AUTH", username, password) if username else ("AUTH", password))
        if db:
            self._hello.append(("SELECT", db))
        self._connect_timeout_s = connect_timeout_s
        self._max_pending = max_pending
        self._connection: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None
        self._closed = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PipelinedRedis:
        """`redis://[[user]:password@]host[:port][/db]`, as redis-py reads it."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(f"only redis:// URLs are supported, got {parts.scheme!r}")
        path = parts.path.lstrip("/")
        return cls(
            parts.hostname or "127.0.0.1",
            parts.port or 6379,
            username=urllib.parse.unquote(parts.username) if parts.username else None,
            password=urllib.parse.unquote(parts.password) if parts.password is not None else None,
            db=int(path) if path else 0,
            **options,
        )

    async def execute_command(self, *args: Any, **_options: Any) -> Any:
        connection = self._connection
        if connection is None or connection.lost:
            connection = await self._connect()
        if connection.pending >= self._max_pending:
            raise RedisConnectionError(
                f"{connection.pending} commands unanswered by Redis; not queueing more"
            )
        command = args[0]
        if isinstance(command, str) and " " in command:  # "SCRIPT LOAD", as redis-py accepts it
            args = (*command.split(), *args[1:])
        return await connection.send(hiredis.pack_command(args), asyncio.get_running_loop())

    async def aclose(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def _connect(self) -> _Connection:
        if self._closed:
            raise RedisConnectionError("the client is closed")
        # Concurrent callers share one connection attempt.
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._open())
        try:
            return await asyncio.shield(self._connecting)
        except OSError as exc:
            raise RedisConnectionError(
                f"cannot connect to Redis at {self._host}:{self._port}: {exc}"
            ) from exc
        except TimeoutError as exc:
            raise RedisConnectionError(
                f"no connection to Redis at {self._host}:{self._port} in time"
            ) from exc

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_timeout_s):
            _, connection = await loop.create_connection(_Connection, self._host, self._port)
            try:
                for command in self._hello:
                    await connection.send(hiredis.pack_command(command), loop)
            except BaseException:
                connection.close()
                raise
        self._connection = connection
        return connection
