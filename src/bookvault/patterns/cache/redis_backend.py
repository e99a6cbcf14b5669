"""The Redis backend: one key family per logical key, atomic steps as Lua scripts.

Key layout, for namespace `books`, key `42`, prefix `cache`:

    cache:{books:42}:v    the encoded entry (TTL = entry TTL + stale window)
    cache:{books:42}:n    the version token (fencing)
    cache:{books:42}:l    the fill lease
    cache:{books:42}:w    the newest write-behind write and whether it is pending
    cache:books:inv       the namespace's invalidation channel

The `{...}` hash tag puts a logical key's family in one Redis Cluster slot, so every
script touches a single slot. Keys need no escaping: a `}` inside the key only ends
the tag early, and it ends it at the same place for all four names.

Reads of a present value cost one GET; the scripts run only on misses, fills,
invalidations and writes. Every call is bounded by `timeout`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from importlib import resources
from typing import Any, Protocol, TypeVar

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .backend import Claim, InvalidationListener, Subscription
from .errors import CacheBackendError, CacheConfigError, CacheTimeoutError
from .invalidation import RedisInvalidationHub

__all__ = ["CommandClient", "RedisBackend", "call_redis"]

T = TypeVar("T")


class CommandClient(Protocol):
    """A client that runs one command and returns its raw reply, raising redis-py's
    exception types (e.g. `bookvault.patterns.pipelined_redis.PipelinedRedis`)."""

    async def execute_command(self, *args: Any, **options: Any) -> Any: ...


async def call_redis(awaitable: Awaitable[T], within: float) -> T:
    """Await a redis-py call for at most `within` seconds, translating its failures."""
    try:
        async with asyncio.timeout(within):
            return await awaitable
    except TimeoutError as exc:
        raise CacheTimeoutError(f"Redis did not answer within {within}s") from exc
    except RedisTimeoutError as exc:
        raise CacheTimeoutError(f"Redis timed out: {exc}") from exc
    except (RedisError, OSError) as exc:
        raise CacheBackendError(f"Redis failed: {exc}") from exc


def _script_text(name: str) -> str:
    return resources.files(__package__).joinpath("lua", name).read_text(encoding="utf-8")


def _millis(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisBackend:
    """A backend on a redis-py asyncio client (with `decode_responses=False`).

    prefix           first part of every key, so several apps can share a Redis
    timeout          seconds each call may take before it counts as a failure
    version_ttl      seconds a version outlives an invalidation; expiry is safe (a fill
                     expecting a vanished version is refused), so this only bounds memory
    pubsub_client    client for the invalidation subscription; defaults to `client`
                     (on Redis Cluster, pass a plain client to any node)
    health_interval  seconds of pub/sub silence before a PING checks the connection
    commands         optional leaner client for the per-read calls (GET, the scripts);
                     `client` keeps pub/sub and write-behind's pipelines. redis-py
                     spends ~100 µs of CPU per command, a pipelined client a fifth.

    The backend does not own `client` unless `owns_client` is set (as `backend_from_url`
    does); `aclose` then closes it.
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "cache",
        timeout: float = 0.25,
        version_ttl: float = 300.0,
        pubsub_client: Redis | None = None,
        health_interval: float = 5.0,
        owns_client: bool = False,
        commands: CommandClient | None = None,
    ) -> None:
        if "{" in prefix or "}" in prefix:
            raise CacheConfigError(f"prefix must not contain braces (they make Redis hash tags): {prefix!r}")
        if timeout <= 0 or version_ttl <= 0 or health_interval <= 0:
            raise CacheConfigError("timeout, version_ttl and health_interval must be positive")
        kwargs = client.get_connection_kwargs()  # type: ignore[no-untyped-call]  # untyped upstream
        if kwargs.get("decode_responses"):
            raise CacheConfigError("the Redis client must not decode responses: entries are bytes")
        self.client = client
        self._commands = commands
        self.prefix = prefix
        self.timeout = timeout
        self._version_ttl_ms = _millis(version_ttl)
        self._owns_client = owns_client
        self._hub = RedisInvalidationHub(pubsub_client or client, health_interval=health_interval)
        self._claim = self._script("claim.lua")
        self._fill = self._script("fill.lua")
        self._release = self._script("release.lua")
        self._write = self._script("write.lua")
        self._invalidate = self._script("invalidate.lua")
        self._stage = self._script("stage.lua")
        self._settle = self._script("settle.lua")

    def _script(self, name: str) -> AsyncScript:
        return self.client.register_script(_script_text(name))

    async def _eval(self, script: AsyncScript, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
        commands = self._commands
        if commands is None:
            return await script(keys=keys, args=args)
        try:
            return await commands.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:  # a restarted or flushed Redis: send the text, which loads it
            return await commands.execute_command("EVAL", script.script, len(keys), *keys, *args)

    async def _command(self, *args: Any) -> Any:
        commands: CommandClient = self._commands or self.client
        return await commands.execute_command(*args)

    def family(self, namespace: str, key: str) -> str:
        """The common start of a logical key's Redis keys (hash tag included)."""
        return f"{self.prefix}:{{{namespace}:{key}}}"

    def channel(self, namespace: str) -> str:
        return f"{self.prefix}:{namespace}:inv"

    async def get(self, namespace: str, key: str) -> bytes | None:
        data = await call_redis(self._command("GET", f"{self.prefix}:{{{namespace}:{key}}}:v"), self.timeout)
        return data if data is None or isinstance(data, bytes) else data.encode()

    async def claim(self, namespace: str, key: str, *, version: str, lease: str, lease_ttl: float) -> Claim:
        f = self.family(namespace, key)
        reply = await call_redis(
            self._eval(
                self._claim,
                (f + ":v", f + ":n", f + ":l"),
                (version, lease, _millis(lease_ttl), self._version_ttl_ms),
            ),
            self.timeout,
        )
        if reply[0] is not None:
            return Claim(bytes(reply[0]), "", leased=False)
        current = reply[1]
        return Claim(None, current.decode() if isinstance(current, bytes) else str(current), reply[2] == 1)

    async def try_lease(self, namespace: str, key: str, *, lease: str, lease_ttl: float) -> bool:
        taken = await call_redis(
            self._command("SET", self.family(namespace, key) + ":l", lease, "NX", "PX", _millis(lease_ttl)),
            self.timeout,
        )
        return bool(taken)

    async def release(self, namespace: str, key: str, *, lease: str) -> None:
        await call_redis(
            self._eval(self._release, (self.family(namespace, key) + ":l",), (lease,)), self.timeout
        )

    async def fill(
        self, namespace: str, key: str, data: bytes, ttl: float, *, version: str, lease: str | None
    ) -> bool:
        f = self.family(namespace, key)
        stored = await call_redis(
            self._eval(
                self._fill,
                (f + ":v", f + ":n", f + ":l", f + ":w"),
                (version, data, _millis(ttl), lease or ""),
            ),
            self.timeout,
        )
        return bool(stored == 1)

    async def write(self, namespace: str, key: str, data: bytes, ttl: float, *, version: str) -> None:
        f = self.family(namespace, key)
        await call_redis(
            self._eval(
                self._write,
                (f + ":v", f + ":n"),
                (version, data, _millis(ttl), self._version_ttl_ms, self.channel(namespace), key),
            ),
            self.timeout,
        )

    async def invalidate(self, namespace: str, key: str, *, version: str) -> None:
        f = self.family(namespace, key)
        await call_redis(
            self._eval(
                self._invalidate,
                (f + ":v", f + ":n"),
                (version, self._version_ttl_ms, self.channel(namespace), key),
            ),
            self.timeout,
        )

    async def stage(
        self, namespace: str, key: str, data: bytes, ttl: float, *, version: str, write_id: str
    ) -> bool:
        f = self.family(namespace, key)
        staged = await call_redis(
            self._eval(
                self._stage,
                (f + ":v", f + ":n", f + ":w"),
                (
                    version,
                    data,
                    _millis(ttl),
                    self._version_ttl_ms,
                    self.channel(namespace),
                    key,
                    write_id,
                ),
            ),
            self.timeout,
        )
        return bool(staged == 1)

    async def settle(self, namespace: str, key: str, *, version: str, write_id: str) -> None:
        f = self.family(namespace, key)
        await call_redis(
            self._eval(
                self._settle,
                (f + ":v", f + ":n", f + ":w"),
                (write_id, version, self._version_ttl_ms, self.channel(namespace), key),
            ),
            self.timeout,
        )

    async def subscribe(self, namespace: str, listener: InvalidationListener) -> Subscription:
        return await self._hub.subscribe(self.channel(namespace), listener)

    async def aclose(self) -> None:
        await self._hub.aclose()
        if self._owns_client:
            await self.client.aclose()
