"""`Cache[V]`: cache-aside with two tiers, stampede defences and fenced fills.

    books = Cache("books", Book, RedisBackend(redis), local=LocalPolicy(maxsize=10_000))
    book = await books.get_or_load(f"{book_id}", lambda: repo.book(book_id))
    ...
    await repo.update(book)        # commit first,
    await books.invalidate(f"{book_id}")   # then invalidate

Reading a key:

1. Local tier (in-process LRU) — a dict lookup, while invalidations flow.
2. Concurrent readers of one key in this process share one flight: the shared-tier
   read inline (`InlineFlight`), the load in its own task (`SingleFlight`).
3. Shared tier — one GET. A fresh entry is returned; XFetch may start a background
   refresh as expiry nears. An entry past its TTL but within `stale_for` is returned
   while one refresh runs (stale-while-revalidate).
4. Miss — `claim` (one script) returns the value if someone filled it meanwhile, or
   the key's version and maybe the fill lease. The lease winner loads; the others poll
   for its fill with doubling pauses, and after `lease_wait` load themselves.
5. Fill — the loaded value (or a negative entry for None) is stored *only if the
   version is unchanged* (see below), with a jittered TTL.

The fencing protocol (no stale-set race). Every key has a version token next to its
value. `invalidate` and `set` replace the token with a new, never-reused one, in the
same atomic script that deletes or replaces the value and publishes the key. A fill
carries the token it read before loading (from `claim`, or from the entry being
refreshed) and the fill script stores the value only if the token is still the same.
So a load that began before a write commits, and ends after the writer's
invalidation, is refused rather than resurrecting the old state:

    reader: claim -> version t1 ... load (old row) ................ fill(t1) -> refused
    writer:                      commit, invalidate -> version t2

Versions may expire or be evicted: a fill expecting a vanished token is refused too,
so losing a version costs a reload, never correctness. Invalidation therefore has to
run after the commit (before it, a reader could load and store the old row in
between); `set` (write-through) is for callers that hold the committed value.

Shared-tier failures never reach readers: they are logged, counted, and the value is
loaded directly; the shared tier is skipped for `retry_after` seconds so an outage
costs one timeout, not one per request. An invalidation that fails is remembered and
replayed in the background; until then reads of that key bypass the shared tier.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, Literal, ParamSpec, TypeAlias, TypeVar

import msgspec

from bookvault.patterns.clock import Clock, SystemClock
from bookvault.patterns.coalesce import SingleFlight

from .backend import CacheBackend, Subscription
from .entry import Entry, make_codec
from .errors import CacheBackendError, CacheConfigError
from .expiry import jittered_ttl, xfetch_due
from .inline_flight import InlineFlight
from .local import MISS, LocalTier
from .metrics import CacheMetrics, CacheStats
from .policy import CachePolicy, LocalPolicy
from .tokens import new_token

if TYPE_CHECKING:
    from .decorator import CachedFunction

__all__ = ["Cache", "Loader"]

log = logging.getLogger(__name__)

V = TypeVar("V")
P = ParamSpec("P")
Loader: TypeAlias = Callable[[], Awaitable[V | None]]

_MAX_UNAPPLIED = 10_000


class Cache(Generic[V]):
    """A named, typed cache over a backend, optionally with a local tier.

    name        namespace of the keys and of the invalidation channel; also the
                metrics label. Bump it (`books.v2`) when the value type changes shape.
    value_type  what values decode to (a msgspec-supported type, e.g. a Struct).
                Values are shared between callers: treat them as immutable
                (`msgspec.Struct` with `frozen=True`).
    local       the in-process tier, or None for none
    serializer  "msgpack" (default) or "json"
    """

    def __init__(
        self,
        name: str,
        value_type: type[V],
        backend: CacheBackend,
        *,
        policy: CachePolicy | None = None,
        local: LocalPolicy | None = None,
        serializer: Literal["msgpack", "json"] = "msgpack",
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not name or "{" in name or "}" in name or any(c.isspace() for c in name):
            raise CacheConfigError(f"a cache name must be non-empty, without braces or spaces: {name!r}")
        if serializer not in ("msgpack", "json"):
            raise CacheConfigError(f"serializer must be 'msgpack' or 'json', got {serializer!r}")
        self.name = name
        self.backend = backend
        self.policy = policy or CachePolicy()
        self.metrics = CacheMetrics(name)
        self._codec = make_codec(value_type, serializer)
        self._clock = clock or SystemClock()
        # Jitter and XFetch draws, not secrets.
        self._rng = rng or random.Random()  # noqa: S311
        self._local: LocalTier[V] | None = (
            LocalTier(local.maxsize, local.ttl, self._clock, self.metrics) if local else None
        )
        self._reads: InlineFlight[str, V | None] = InlineFlight()
        self._flights: SingleFlight[str, V | None] = SingleFlight()
        self._subscription: Subscription | None = None
        self._started = False
        self._down_until = -math.inf
        self._down = False
        self._unapplied: set[str] = set()
        self._distrust_until = -math.inf
        self._repair_task: asyncio.Task[None] | None = None
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # Lifecycle

    async def start(self, *, wait: float = 2.0) -> None:
        """Subscribe the local tier to invalidations (done on first use otherwise), and
        wait up to `wait` seconds for it to go live. Until it does, reads skip it; an
        unreachable Redis therefore delays nothing beyond `wait`."""
        local = self._local
        if local is None or self._started:
            return
        self._started = True
        self._subscription = await self.backend.subscribe(self.name, local)
        if wait > 0 and not local.live:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(local.wait_live(), wait)

    async def aclose(self) -> None:
        """Stop background refreshes and the subscription. The backend stays open."""
        tasks = [*self._tasks, *([self._repair_task] if self._repair_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._subscription is not None:
            await self._subscription.aclose()
            self._subscription = None
        self._started = False

    async def __aenter__(self) -> Cache[V]:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # Reading

    async def get_or_load(self, key: str, loader: Loader[V], *, ttl: float | None = None) -> V | None:
        """The cached value for `key`, or what `loader()` returns (then cached).

        A loader returning None means "no such thing": that is cached too, for the
        policy's `negative_ttl`. The loader's exceptions reach the caller (and every
        caller sharing the flight) and nothing is cached.
        """
        local = self._local
        if local is not None and local.live:
            value = local.get(key)
            if value is not MISS:
                self.metrics.hits_l1 += 1
                if value is None:
                    self.metrics.negative_hits += 1
                return value
        return await self._reads.run(key, lambda: self._resolve(key, loader, ttl))

    async def get(self, key: str) -> V | None:
        """The cached value, or None if absent, expired, or a cached miss. Never loads."""
        local = self._local
        if local is not None and local.live:
            value = local.get(key)
            if value is not MISS:
                self.metrics.hits_l1 += 1
                return value
        if not self._shared_usable(key):
            return None
        try:
            data = await self.backend.get(self.name, key)
        except CacheBackendError as exc:
            self._failed(exc)
            return None
        entry = self._decode(key, data) if data is not None else None
        if entry is None or entry.expires_at <= self._clock.time():
            return None
        self.metrics.hits_l2 += 1
        return entry.value

    # Writing

    async def set(self, key: str, value: V, *, ttl: float | None = None) -> None:
        """Write-through: after the database commit, store the committed value.

        Fences off fills that loaded the previous state and evicts every process's
        local copy. With concurrent writers to one key the last `set` wins, whatever
        the commit order: prefer `invalidate` there.
        """
        self.metrics.invalidations += 1
        life = self._life(ttl)
        version = new_token()
        data = self._codec.encode_entry(Entry(version, self._clock.time() + life, 0.0, value))
        if self._local is not None:
            self._local.evict(key)
        try:
            await self.backend.write(self.name, key, data, life + self.policy.stale_for, version=version)
        except CacheBackendError as exc:
            self._failed(exc)
            self._remember_unapplied(key)

    async def invalidate(self, key: str) -> None:
        """After the database commit: drop `key` here, in the shared tier, and in every
        process's local tier, and refuse fills that loaded the previous state."""
        self.metrics.invalidations += 1
        if self._local is not None:
            self._local.evict(key)
        try:
            await self.backend.invalidate(self.name, key, version=new_token())
        except CacheBackendError as exc:
            self._failed(exc)
            self._remember_unapplied(key)

    async def refresh(self, key: str, loader: Loader[V], *, ttl: float | None = None) -> None:
        """Refresh-ahead: reload `key` now and store it with a full TTL, so readers of a
        key kept warm never find it expired. Fenced like any fill: if the key is
        invalidated while `loader` runs, the reloaded value is refused. A key another
        process is already refreshing, or a shared tier that fails, is left alone;
        an absent key is loaded as on a miss."""
        if ttl is not None:
            self._life(ttl)  # refuse a bad ttl before loading, not after
        if not self._shared_usable(key):
            return
        try:
            data = await self.backend.get(self.name, key)
        except CacheBackendError as exc:
            self._failed(exc)
            return
        entry = self._decode(key, data) if data is not None else None
        if entry is None:
            await self.get_or_load(key, loader, ttl=ttl)
            return
        if key in self._refreshing:
            return
        self._refreshing.add(key)
        await self._refresh(key, loader, entry.version, ttl)

    # Introspection

    def stats(self) -> CacheStats:
        self.metrics.coalesced = self._reads.shared + self._flights.shared
        return self.metrics.snapshot(local_size=len(self._local) if self._local is not None else 0)

    @property
    def local_live(self) -> bool:
        """Whether the local tier is serving (invalidations are flowing)."""
        return self._local is not None and self._local.live

    def cached(
        self, key: Callable[..., str] | None = None
    ) -> Callable[[Callable[P, Awaitable[V | None]]], CachedFunction[P, V]]:
        """Decorate an async function so calls go through `get_or_load`; see `cached`."""
        from .decorator import cached

        return cached(self, key)

    # Write-behind support (used by `WriteBehindQueue` and `WriteBehindFlusher`)

    async def _stage(self, key: str, value: V, write_id: str) -> bool:
        life = self._life(None)
        version = new_token()
        data = self._codec.encode_entry(Entry(version, self._clock.time() + life, 0.0, value))
        if self._local is not None:
            self._local.evict(key)
        return await self.backend.stage(
            self.name, key, data, life + self.policy.stale_for, version=version, write_id=write_id
        )

    async def _settle(self, key: str, write_id: str) -> None:
        await self.backend.settle(self.name, key, version=new_token(), write_id=write_id)

    # The slow path

    def _life(self, ttl: float | None) -> float:
        """The jittered lifetime of an entry written now."""
        if ttl is None:
            ttl = self.policy.ttl
        elif not (ttl > 0 and math.isfinite(ttl)):
            raise CacheConfigError(f"ttl must be a positive number of seconds, got {ttl!r}")
        return jittered_ttl(ttl, self.policy.jitter, self._rng)

    async def _resolve(self, key: str, loader: Loader[V], ttl: float | None) -> V | None:
        if ttl is not None:
            self._life(ttl)  # refuse a bad ttl before loading, not after
        local = self._local
        if local is not None and not self._started:
            await self.start(wait=0)
        since = local.begin() if local is not None else 0
        if not self._shared_usable(key):
            return await self._load_degraded(loader)
        try:
            data = await self.backend.get(self.name, key)
        except CacheBackendError as exc:
            self._failed(exc)
            return await self._load_degraded(loader)
        if self._down:
            self._recovered()
        if data is not None:
            entry = self._decode(key, data)
            if entry is not None:
                return self._serve(key, entry, loader, ttl, since)
            await self._drop_unreadable(key)
        self.metrics.misses += 1
        # The loader runs in its own task (SingleFlight), so a cancelled caller does
        # not abort a load that others, here or after a retry, are waiting for.
        return await self._flights.run(key, lambda: self._load_claimed(key, loader, ttl, since))

    def _serve(self, key: str, entry: Entry[V], loader: Loader[V], ttl: float | None, since: int) -> V | None:
        now = self._clock.time()
        left = entry.expires_at - now
        if left <= 0:
            # Kept past its TTL for `stale_for`: serve it while one reader refreshes.
            self.metrics.stale_serves += 1
            self._refresh_later(key, loader, entry.version, ttl)
            return entry.value
        self.metrics.hits_l2 += 1
        if entry.value is None:
            self.metrics.negative_hits += 1
        beta = self.policy.early_beta
        if beta > 0.0 and xfetch_due(now, entry.expires_at, entry.delta, beta, self._rng):
            self._refresh_later(key, loader, entry.version, ttl)
        if self._local is not None:
            self._local.put(key, entry.value, left, since)
        return entry.value

    async def _load_claimed(self, key: str, loader: Loader[V], ttl: float | None, since: int) -> V | None:
        policy = self.policy
        clock = self._clock
        lease = new_token()
        deadline = clock.monotonic() + policy.lease_wait
        pause = policy.poll_initial
        waited = False
        while True:
            try:
                claim = await self.backend.claim(
                    self.name, key, version=new_token(), lease=lease, lease_ttl=policy.lease_ttl
                )
            except CacheBackendError as exc:
                self._failed(exc)
                return await self._load_degraded(loader)
            if claim.value is not None:
                entry = self._decode(key, claim.value)
                if entry is None:
                    return await self._load_degraded(loader)
                return self._serve(key, entry, loader, ttl, since)
            if claim.leased:
                break
            if not waited:
                waited = True
                self.metrics.lease_waits += 1
            if clock.monotonic() >= deadline:
                self.metrics.lease_timeouts += 1
                break
            await clock.sleep(pause)
            pause = min(pause * 2, policy.poll_max)
        held = lease if claim.leased else None
        try:
            value, delta = await self._load(loader)
        except BaseException:
            if held is not None:
                await self._release_quietly(key, held)
            raise
        await self._store(key, value, delta, claim.version, held, ttl, since)
        return value

    async def _load(self, loader: Loader[V]) -> tuple[V | None, float]:
        self.metrics.loads += 1
        started = self._clock.monotonic()
        value = await loader()
        return value, self._clock.monotonic() - started

    async def _load_degraded(self, loader: Loader[V]) -> V | None:
        self.metrics.degraded_loads += 1
        self.metrics.loads += 1
        return await loader()

    async def _store(
        self,
        key: str,
        value: V | None,
        delta: float,
        version: str,
        lease: str | None,
        ttl: float | None,
        since: int,
    ) -> None:
        policy = self.policy
        if value is None:
            if policy.negative_ttl is None:
                if lease is not None:
                    await self._release_quietly(key, lease)
                return
            life = jittered_ttl(policy.negative_ttl, policy.jitter, self._rng)
            kept = life
        else:
            life = self._life(ttl)
            kept = life + policy.stale_for
        data = self._codec.encode_entry(Entry(version, self._clock.time() + life, delta, value))
        try:
            stored = await self.backend.fill(self.name, key, data, kept, version=version, lease=lease)
        except CacheBackendError as exc:
            self._failed(exc)
            return
        if not stored:
            self.metrics.fill_rejections += 1
            return
        self.metrics.fills += 1
        if self._local is not None:
            self._local.put(key, value, life, since)

    def _refresh_later(self, key: str, loader: Loader[V], version: str, ttl: float | None) -> None:
        if key in self._refreshing:
            return
        self._refreshing.add(key)
        task = asyncio.get_running_loop().create_task(self._refresh(key, loader, version, ttl))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(self, key: str, loader: Loader[V], version: str, ttl: float | None) -> None:
        lease = new_token()
        since = self._local.begin() if self._local is not None else 0
        try:
            if not await self.backend.try_lease(self.name, key, lease=lease, lease_ttl=self.policy.lease_ttl):
                return  # another process is refreshing it
            self.metrics.early_refreshes += 1
            try:
                value, delta = await self._load(loader)
            except Exception:
                # The current value stays served until it expires; the next miss retries.
                log.warning("cache %s: background refresh of %r failed", self.name, key, exc_info=True)
                self.metrics.errors += 1
                await self._release_quietly(key, lease)
                return
            await self._store(key, value, delta, version, lease, ttl, since)
        except CacheBackendError as exc:
            self._failed(exc)
        finally:
            self._refreshing.discard(key)

    async def _release_quietly(self, key: str, lease: str) -> None:
        try:
            await self.backend.release(self.name, key, lease=lease)
        except CacheBackendError as exc:
            self._failed(exc)  # the lease expires on its own

    def _decode(self, key: str, data: bytes) -> Entry[V] | None:
        try:
            return self._codec.decode_entry(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            # Typically an entry written by an older version of the value type.
            self.metrics.errors += 1
            log.warning("cache %s: unreadable entry for %r (%s); treated as a miss", self.name, key, exc)
            return None

    async def _drop_unreadable(self, key: str) -> None:
        try:
            await self.backend.invalidate(self.name, key, version=new_token())
        except CacheBackendError as exc:
            self._failed(exc)

    # Degraded mode

    def _shared_usable(self, key: str) -> bool:
        now = self._clock.monotonic()
        if now < self._down_until or now < self._distrust_until:
            return False
        return not (self._unapplied and key in self._unapplied)

    def _failed(self, exc: CacheBackendError) -> None:
        self.metrics.errors += 1
        self._down_until = self._clock.monotonic() + self.policy.retry_after
        if not self._down:
            self._down = True
            log.warning("cache %s: shared tier failing (%s); reading through to the loader", self.name, exc)

    def _recovered(self) -> None:
        self._down = False
        log.info("cache %s: shared tier answering again", self.name)

    def _remember_unapplied(self, key: str) -> None:
        if len(self._unapplied) >= _MAX_UNAPPLIED:
            # Too many to replay: distrust the shared tier until every entry written
            # before now has expired.
            policy = self.policy
            lifetime = policy.ttl * (1 + policy.jitter) + policy.stale_for
            self._distrust_until = self._clock.monotonic() + lifetime
            self._unapplied.clear()
            log.error(
                "cache %s: too many failed invalidations; shared tier bypassed for %ss", self.name, lifetime
            )
            return
        self._unapplied.add(key)
        if self._repair_task is None or self._repair_task.done():
            self._repair_task = asyncio.get_running_loop().create_task(self._replay_invalidations())

    async def _replay_invalidations(self) -> None:
        while self._unapplied:
            await self._clock.sleep(self.policy.retry_after)
            for key in list(self._unapplied):
                try:
                    await self.backend.invalidate(self.name, key, version=new_token())
                except CacheBackendError as exc:
                    self._failed(exc)
                    break
                self._unapplied.discard(key)
