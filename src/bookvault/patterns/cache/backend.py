"""The interface between a cache and its shared storage.

Backends store opaque bytes (an encoded `Entry`) per `(namespace, key)` and keep,
next to each value, the small amount of state the fencing protocol needs:

    version   a token that changes on every invalidation or write; a fill is stored
              only if the version is still the one it read before loading
    lease     a short, token-owned lock: one process loads a missing key while the
              others wait for its fill
    staged    the newest write-behind write for the key, "pending" until the flusher
              has applied it to the database; fills are refused while one is pending

Every operation that touches more than one of these is atomic (one Lua script in
Redis). Backends translate their own errors into `CacheBackendError`.

Backends also fan invalidations out to every process's local tier: `subscribe`
registers an `InvalidationListener` for a namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["CacheBackend", "Claim", "InvalidationListener", "Subscription"]


@dataclass(frozen=True, slots=True)
class Claim:
    """The answer to a miss: either the value someone stored meanwhile, or the version
    a fill must match and whether this caller now holds the lease to load it."""

    value: bytes | None
    version: str
    leased: bool


class InvalidationListener(Protocol):
    def invalidated(self, key: str) -> None:
        """Another process (or this one) invalidated `key` in the listened namespace."""

    def reset(self, *, live: bool) -> None:
        """Invalidations may have been missed: forget everything. `live` says whether
        messages flow now (subscribed) or not (connection lost)."""


class Subscription(Protocol):
    async def aclose(self) -> None: ...


class CacheBackend(Protocol):
    async def get(self, namespace: str, key: str) -> bytes | None:
        """The stored bytes, or None. One round trip."""

    async def claim(self, namespace: str, key: str, *, version: str, lease: str, lease_ttl: float) -> Claim:
        """After a miss: return the value if one was stored meanwhile; otherwise the
        key's current version (set to `version` if it has none) and whether the lease
        was taken with token `lease` for `lease_ttl` seconds."""

    async def try_lease(self, namespace: str, key: str, *, lease: str, lease_ttl: float) -> bool:
        """Take the lease if nobody holds it (for refreshing a present value)."""

    async def release(self, namespace: str, key: str, *, lease: str) -> None:
        """Give the lease back if `lease` still holds it."""

    async def fill(
        self, namespace: str, key: str, data: bytes, ttl: float, *, version: str, lease: str | None
    ) -> bool:
        """Store `data` for `ttl` seconds if the key's version is still `version` and no
        write-behind write is pending; release `lease` either way. True if stored."""

    async def write(self, namespace: str, key: str, data: bytes, ttl: float, *, version: str) -> None:
        """Write-through: set the version to `version` and store `data` (encoded under
        that version), then tell every process to drop its local copy."""

    async def invalidate(self, namespace: str, key: str, *, version: str) -> None:
        """Set the version to `version`, delete the value, tell every process."""

    async def stage(
        self, namespace: str, key: str, data: bytes, ttl: float, *, version: str, write_id: str
    ) -> bool:
        """Write-behind: like `write`, and mark write `write_id` pending. Refused (False)
        if a newer write is already staged."""

    async def settle(self, namespace: str, key: str, *, version: str, write_id: str) -> None:
        """Write-behind write `write_id` reached the database. If it is the one staged,
        clear the pending mark; if the cache never saw it (the writer crashed between
        enqueueing and staging), invalidate the key with `version`."""

    async def subscribe(self, namespace: str, listener: InvalidationListener) -> Subscription:
        """Deliver this namespace's invalidations to `listener` until closed. Returns at
        once; the listener is told `reset(live=True)` when messages start flowing."""

    async def aclose(self) -> None:
        """Release connections and stop subscriptions this backend opened."""
