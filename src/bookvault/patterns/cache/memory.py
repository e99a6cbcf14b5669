"""The in-process backend: a bounded LRU with TTLs, with the same semantics as Redis.

For tests, for a single process, and as the reference the Redis backend is checked
against. Its invalidations reach only caches sharing this backend object.
"""

from __future__ import annotations

from bookvault.patterns.clock import Clock, SystemClock

from .backend import Claim, InvalidationListener
from .errors import CacheConfigError
from .lru import LruTtlMap
from .write_ids import write_id_order

__all__ = ["MemoryBackend"]

_PENDING = "P:"
_SETTLED = "S:"


class _MemorySubscription:
    __slots__ = ("_backend", "_listener", "_namespace")

    def __init__(self, backend: MemoryBackend, namespace: str, listener: InvalidationListener) -> None:
        self._backend = backend
        self._namespace = namespace
        self._listener = listener

    async def aclose(self) -> None:
        self._backend._unsubscribe(self._namespace, self._listener)


class MemoryBackend:
    """`maxsize` values at most (least recently used evicted first); versions, leases
    and pending marks are bounded the same way. Losing a version to the bound is safe:
    a fill that expected it is refused, never wrongly stored."""

    def __init__(
        self, maxsize: int = 100_000, *, clock: Clock | None = None, version_ttl: float = 300.0
    ) -> None:
        if version_ttl <= 0:
            raise CacheConfigError(f"version_ttl must be positive, got {version_ttl!r}")
        clock = clock or SystemClock()
        self._clock = clock
        self._version_ttl = version_ttl
        self._values: LruTtlMap[bytes] = LruTtlMap(maxsize, clock)
        self._versions: LruTtlMap[str] = LruTtlMap(maxsize, clock)
        self._leases: LruTtlMap[str] = LruTtlMap(maxsize, clock)
        self._staged: LruTtlMap[str] = LruTtlMap(maxsize, clock)
        self._listeners: dict[str, list[InvalidationListener]] = {}

    @property
    def evictions(self) -> int:
        return self._values.evictions

    async def get(self, namespace: str, key: str) -> bytes | None:
        return self._values.get(f"{namespace}\0{key}")

    async def claim(self, namespace: str, key: str, *, version: str, lease: str, lease_ttl: float) -> Claim:
        k = f"{namespace}\0{key}"
        value = self._values.get(k)
        if value is not None:
            return Claim(value, "", leased=False)
        current = self._versions.get(k)
        if current is None:
            current = version
            self._versions.set(k, version, self._version_ttl)
        leased = self._leases.get(k) is None
        if leased:
            self._leases.set(k, lease, lease_ttl)
        return Claim(None, current, leased)

    async def try_lease(self, namespace: str, key: str, *, lease: str, lease_ttl: float) -> bool:
        k = f"{namespace}\0{key}"
        if self._leases.get(k) is not None:
            return False
        self._leases.set(k, lease, lease_ttl)
        return True

    async def release(self, namespace: str, key: str, *, lease: str) -> None:
        k = f"{namespace}\0{key}"
        if self._leases.get(k) == lease:
            self._leases.pop(k)

    async def fill(
        self, namespace: str, key: str, data: bytes, ttl: float, *, version: str, lease: str | None
    ) -> bool:
        k = f"{namespace}\0{key}"
        staged = self._staged.get(k)
        stored = self._versions.get(k) == version and not (staged and staged.startswith(_PENDING))
        if stored:
            self._values.set(k, data, ttl)
            if (self._versions.expires_in(k) or 0.0) < ttl:
                self._versions.set(k, version, ttl)
        if lease is not None and self._leases.get(k) == lease:
            self._leases.pop(k)
        return stored

    async def write(self, namespace: str, key: str, data: bytes, ttl: float, *, version: str) -> None:
        k = f"{namespace}\0{key}"
        self._versions.set(k, version, max(ttl, self._version_ttl))
        self._values.set(k, data, ttl)
        self._publish(namespace, key)

    async def invalidate(self, namespace: str, key: str, *, version: str) -> None:
        k = f"{namespace}\0{key}"
        self._versions.set(k, version, self._version_ttl)
        self._values.pop(k)
        self._publish(namespace, key)

    async def stage(
        self, namespace: str, key: str, data: bytes, ttl: float, *, version: str, write_id: str
    ) -> bool:
        k = f"{namespace}\0{key}"
        current = self._staged.get(k)
        if current is not None and write_id_order(current[2:]) >= write_id_order(write_id):
            return False
        self._staged.set(k, _PENDING + write_id, max(ttl, self._version_ttl))
        await self.write(namespace, key, data, ttl, version=version)
        return True

    async def settle(self, namespace: str, key: str, *, version: str, write_id: str) -> None:
        k = f"{namespace}\0{key}"
        current = self._staged.get(k)
        if current == _PENDING + write_id:
            self._staged.set(k, _SETTLED + write_id, self._staged.expires_in(k) or self._version_ttl)
            return
        if current is not None and write_id_order(current[2:]) > write_id_order(write_id):
            return  # a newer write is staged; it settles the key
        self._staged.set(k, _SETTLED + write_id, self._version_ttl)
        await self.invalidate(namespace, key, version=version)

    async def subscribe(self, namespace: str, listener: InvalidationListener) -> _MemorySubscription:
        self._listeners.setdefault(namespace, []).append(listener)
        listener.reset(live=True)
        return _MemorySubscription(self, namespace, listener)

    async def aclose(self) -> None:
        self._listeners.clear()

    def _unsubscribe(self, namespace: str, listener: InvalidationListener) -> None:
        listeners = self._listeners.get(namespace, [])
        if listener in listeners:
            listeners.remove(listener)

    def _publish(self, namespace: str, key: str) -> None:
        for listener in self._listeners.get(namespace, ()):
            listener.invalidated(key)
