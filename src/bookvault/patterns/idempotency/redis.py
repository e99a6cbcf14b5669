"""A Redis fast path for replays: completed outcomes kept where a retry can find
them without a database transaction.

The database stays the source of truth (the key is claimed there, in the
business transaction); this cache only ever holds outcomes that committed, so
a hit is always safe to replay. It never makes a request fail: when Redis
cannot be reached, `get` misses and `put` does nothing, and the guard falls
back to the database.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import msgspec
from redis.exceptions import RedisError

from bookvault.patterns.idempotency.keys import Scope
from bookvault.patterns.idempotency.store import StoredKey, StoredResponse

__all__ = ["RedisReplayCache"]

_Entry = tuple[str, int, list[tuple[str, str]], bytes]
_decoder = msgspec.msgpack.Decoder(_Entry)


class RedisReplayCache:
    """Completed outcomes under `{prefix}{sha256(scope)}`, each expiring with its key."""

    __slots__ = ("_prefix", "_redis")

    def __init__(self, redis: Any, *, prefix: str = "idempotency:") -> None:
        self._redis = redis
        self._prefix = prefix

    def key(self, scope: Scope) -> str:
        text = "\n".join((scope.principal, scope.method, scope.path, scope.key))
        return self._prefix + hashlib.sha256(text.encode()).hexdigest()

    async def get(self, scope: Scope) -> StoredKey | None:
        """The cached completed outcome, or None (not cached, or Redis unreachable)."""
        try:
            raw = await self._redis.get(self.key(scope))
        except (RedisError, OSError):
            return None
        if raw is None:
            return None
        try:
            fingerprint, status, headers, body = _decoder.decode(raw)
        except msgspec.DecodeError:
            return None  # written by an incompatible version: the database answers
        return StoredKey(fingerprint, StoredResponse(status, tuple(headers), body))

    async def put(self, scope: Scope, stored: StoredKey, ttl: timedelta) -> None:
        """Cache a committed outcome for `ttl` (at most what its key has left)."""
        millis = int(ttl.total_seconds() * 1000)
        if millis <= 0:
            return
        response = stored.response
        entry = (stored.fingerprint, response.status, list(response.headers), response.body)
        try:
            await self._redis.set(self.key(scope), msgspec.msgpack.encode(entry), px=millis)
        except (RedisError, OSError):
            return
