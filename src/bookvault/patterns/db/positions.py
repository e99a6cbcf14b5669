"""Where each principal's last write got to in the WAL, remembered briefly.

A read by the same principal must not be served by a replica that has not yet
replayed that far. Positions only ever move forward, and expire after `ttl_s`
(by then every healthy replica has caught up, or left the rotation)."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bookvault.patterns.clock import Clock, SystemClock

__all__ = ["MemoryWritePositions", "RedisWritePositions", "WritePositions"]

log = logging.getLogger(__name__)

# Keep the larger of the stored and the new position, and refresh the TTL: one round trip.
_REMEMBER = """
local current = redis.call('GET', KEYS[1])
if (not current) or tonumber(current) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""


class WritePositions(Protocol):
    async def get(self, principal: str) -> int | None:
        """The principal's last write position, or None when unknown or expired."""

    async def remember(self, principal: str, lsn: int) -> None:
        """Record a write position (never moving backwards)."""


class MemoryWritePositions:
    """Positions held in this process: right when one process serves a principal."""

    __slots__ = ("_clock", "_positions", "_ttl_s")

    def __init__(self, ttl_s: float = 30.0, clock: Clock | None = None) -> None:
        self._ttl_s = ttl_s
        self._clock = clock or SystemClock()
        self._positions: dict[str, tuple[int, float]] = {}

    async def get(self, principal: str) -> int | None:
        entry = self._positions.get(principal)
        if entry is None:
            return None
        lsn, expires = entry
        if self._clock.monotonic() >= expires:
            del self._positions[principal]
            return None
        return lsn

    async def remember(self, principal: str, lsn: int) -> None:
        current = await self.get(principal)
        self._positions[principal] = (max(lsn, current or 0), self._clock.monotonic() + self._ttl_s)


class RedisWritePositions:
    """Positions shared by every process through Redis (Cluster-safe keys).

    When Redis cannot answer, `get` returns a position no replica has reached,
    so the router reads from the primary, which is always safe."""

    __slots__ = ("_client", "_prefix", "_remember", "_timeout_s", "_ttl_ms", "errors")

    def __init__(
        self, client: aioredis.Redis, *, prefix: str = "rw", ttl_s: float = 30.0, timeout_s: float = 0.1
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_ms = int(ttl_s * 1000)
        self._timeout_s = timeout_s
        self._remember = client.register_script(_REMEMBER)
        self.errors = 0

    def _key(self, principal: str) -> str:
        return f"{{{self._prefix}:{principal}}}"

    async def get(self, principal: str) -> int | None:
        try:
            async with asyncio.timeout(self._timeout_s):
                raw = await self._client.get(self._key(principal))
        except (RedisError, OSError, TimeoutError) as exc:
            self.errors += 1
            log.warning("write position unavailable, reading from the primary: %s", exc)
            return _UNKNOWN_BUT_WRITTEN
        return int(raw) if raw is not None else None

    async def remember(self, principal: str, lsn: int) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._remember(keys=[self._key(principal)], args=[lsn, self._ttl_ms])
        except (RedisError, OSError, TimeoutError) as exc:
            # The write itself succeeded; only its routing hint is lost, so the
            # principal may briefly read a replica that is behind. Counted and logged.
            self.errors += 1
            log.warning("could not remember a write position: %s", exc)


# When positions cannot be read at all, pretend the principal wrote "at the end
# of the WAL": no replica qualifies, so the read goes to the primary.
_UNKNOWN_BUT_WRITTEN = 2**64 - 1
