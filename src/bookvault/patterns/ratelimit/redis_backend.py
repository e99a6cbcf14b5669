"""Shared storage in Redis: one atomic Lua call per decision.

Each decision is a single EVALSHA of the algorithm's script (`lua/*.lua`).
The script reads the server's clock (`TIME`, microseconds), so processes on
machines whose clocks disagree still share one limit exactly. If the server
does not know the script (restart, failover, `SCRIPT FLUSH`), the call is
repeated once as EVAL, which also caches it again; `load_scripts()` at startup
spares the first decisions that second trip.

Keys: `{<prefix>:<policy>:<key>}:<tag>`, e.g. `{rl:member:42}:tb`. Each script
touches only keys inside that hash tag, so it runs unchanged on Redis Cluster;
every key has a TTL, so idle clients cost no memory.

Give the limiter a client without its own retries (`retry=Retry(NoBackoff(), 0)`):
the limiter already bounds the call with a timeout and applies its failure
policy, and hidden retries only spend that budget.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
from typing import Any, Protocol

from redis.exceptions import NoScriptError, RedisError

from bookvault.patterns.ratelimit.algorithm import Algorithm
from bookvault.patterns.ratelimit.decision import Decision, RatePolicy
from bookvault.patterns.ratelimit.errors import StorageError

__all__ = ["RedisBackend", "RedisClient", "RedisStore", "lua_source"]


class RedisClient(Protocol):
    """What we need of `redis.asyncio.Redis` (or `RedisCluster`)."""

    async def execute_command(self, *args: Any, **options: Any) -> Any: ...


_LUA = importlib.resources.files("bookvault.patterns.ratelimit").joinpath("lua")


@functools.cache
def lua_source(script: str) -> str:
    """The text of `lua/<script>.lua`, shipped as package data."""
    return _LUA.joinpath(f"{script}.lua").read_text(encoding="utf-8")


def _sha1(source: str) -> str:
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


class RedisBackend:
    __slots__ = ("client", "prefix")

    def __init__(self, client: RedisClient, *, prefix: str = "rl") -> None:
        if not prefix or any(c in prefix for c in "{}:"):
            raise ValueError(f"prefix {prefix!r} must be non-empty and free of '{{', '}}' and ':'")
        self.client = client
        self.prefix = prefix

    def bind(self, policy: RatePolicy, algorithm: Algorithm, *, degraded: bool = False) -> RedisStore:
        return RedisStore(self.client, self.prefix, policy, algorithm, degraded=degraded)

    async def load_scripts(self) -> None:
        """Load every script ahead of traffic (at startup), so no first decision
        pays a second round trip."""
        for entry in _LUA.iterdir():
            if entry.name.endswith(".lua"):
                source = lua_source(entry.name.removesuffix(".lua"))
                try:
                    await self.client.execute_command("SCRIPT LOAD", source)
                except (RedisError, OSError) as exc:
                    raise StorageError(f"cannot load the rate-limit script {entry.name}: {exc}") from exc


class RedisStore:
    __slots__ = ("_args", "_client", "_degraded", "_head", "_limit", "_policy", "_sha", "_source", "_tail")

    def __init__(
        self,
        client: RedisClient,
        prefix: str,
        policy: RatePolicy,
        algorithm: Algorithm,
        *,
        degraded: bool = False,
    ) -> None:
        self._client = client
        self._policy = policy
        self._limit = policy.quota
        self._degraded = degraded
        self._source = lua_source(algorithm.script)
        self._sha = _sha1(self._source)
        self._args = algorithm.redis_args()
        self._head = f"{{{prefix}:{policy.name}:"
        self._tail = f"}}:{algorithm.tag}"

    def key(self, key: str) -> str:
        """The Redis key that holds `key`'s state under this policy."""
        return self._head + key + self._tail

    async def take(self, key: str, cost: int) -> Decision:
        name = self._head + key + self._tail
        try:
            try:
                reply = await self._client.execute_command("EVALSHA", self._sha, 1, name, cost, *self._args)
            except NoScriptError:
                reply = await self._client.execute_command("EVAL", self._source, 1, name, cost, *self._args)
        except (RedisError, OSError) as exc:
            raise StorageError(f"rate-limit decision for policy {self._policy.name!r} failed: {exc}") from exc
        allowed, remaining, reset_us, retry_us = reply
        return Decision(
            allowed == 1,
            self._limit,
            remaining,
            reset_us / 1_000_000,
            retry_us / 1_000_000,
            self._policy,
            False,
            self._degraded,
        )
