"""The accounts service's read caches, behind the `cache` switch.

What is cached (two tiers: an in-process LRU over Redis, `patterns.cache`):

* `balance`  GET /members/{id}/balance without `as_of` (the balance now), by member.
             A balance `as_of` a past instant comes from the ledger, uncached.
* `summary`  GET /members/{id}/summary, by member. Short-lived (15 s): when the summary
             comes from an event-fed read model, the commit's invalidation may precede
             the model's update, so whatever applies the events should also call
             `SummaryInvalidator`; the TTL bounds the staleness added if it does not.

Never a stale balance after a write. Every payment or charge invalidates the
member's balance and summary once its transaction has committed and before its
response is sent (`changed`, the service's after-commit hook), with the cache's
fenced invalidation: a read that loaded the old row before the commit cannot store
it afterwards. The writing process drops its own copies at once; other processes
(the stack runs one accounts process) hear of it over Redis pub/sub within
milliseconds. A replayed idempotent request invalidates too: should the original
have committed and then died before invalidating, the retry repairs it. A member
that does not exist is not remembered (no negative caching), so a member created
a moment later is found at once.

An entry's `as_of` is when it was loaded; since any change since would have
invalidated it, the balance is still the one at `as_of`, and also now.

VIP members' balances are kept warm: every `VIP_WARM_EVERY_S` a background task
refreshes each VIP's balance ahead of its expiry (`Cache.refresh`, fenced like any
fill), so a VIP's balance read is a cache hit even after a quiet spell. The list of
VIPs is read on each round, so a member who becomes VIP is warmed from the next.

Redis unavailable: reads go to PostgreSQL (counted as degraded loads), never an
error; invalidations that failed are replayed by the cache and, until then, the
keys concerned bypass Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from bookvault.accounts.schemas import Balance, Summary
from bookvault.config import Settings
from bookvault.patterns.cache import Cache, CachePolicy, LocalPolicy, RedisBackend
from bookvault.patterns.clock import Clock, SystemClock
from bookvault.patterns.pipelined_redis import PipelinedRedis
from bookvault.redis_clients import fail_fast

__all__ = [
    "BALANCE_CACHE",
    "BALANCE_POLICY",
    "SUMMARY_CACHE",
    "SUMMARY_POLICY",
    "VIP_WARM_EVERY_S",
    "AccountCacheCollector",
    "AccountReads",
    "SummaryInvalidator",
    "account_reads",
]

log = logging.getLogger(__name__)

# Every write invalidates, so the TTL only bounds changes made behind the service's
# back (a ledger replay, a manual fix). The local TTL bounds a lost invalidation.
BALANCE_POLICY = CachePolicy(ttl=60.0, jitter=0.1, negative_ttl=None, early_beta=1.0)
SUMMARY_POLICY = CachePolicy(ttl=15.0, jitter=0.1, negative_ttl=None, early_beta=1.0)
ACCOUNT_LOCAL = LocalPolicy(maxsize=20_000, ttl=10.0)
BALANCE_CACHE = "accounts.balance.v1"
SUMMARY_CACHE = "accounts.summary.v1"
# Well inside the shortest jittered TTL (54 s): a warmed balance never expires.
VIP_WARM_EVERY_S = 25.0
VIP_WARM_CONCURRENCY = 8
REDIS_TIMEOUT_S = 0.25
# Kept here rather than in repo.py: only the warmer needs it.
_VIP_MEMBERS = "SELECT id FROM members WHERE tier = $1 ORDER BY id"

V = TypeVar("V")
BalanceLoader = Callable[[int, datetime | None], Awaitable[Balance]]
SummaryLoader = Callable[[int], Awaitable[Summary]]


class AccountReads:
    """Balance and summary reads, cached when a backend is given; `changed` is the
    after-commit hook. Without a backend every call goes straight to the loaders."""

    def __init__(
        self,
        *,
        backend: RedisBackend | None,
        pool: asyncpg.Pool | None = None,
        clock: Clock | None = None,
        warm_every_s: float = VIP_WARM_EVERY_S,
        clients: tuple[Redis | PipelinedRedis, ...] = (),
    ) -> None:
        self._backend = backend
        self._clients = clients  # closed with this object
        self._pool = pool
        self._clock = clock or SystemClock()
        self._warm_every_s = warm_every_s
        self._load_balance: BalanceLoader | None = None
        self._load_summary: SummaryLoader | None = None
        self._warmer: asyncio.Task[None] | None = None
        self.vip_refreshes = 0
        self.balances: Cache[Balance] | None = None
        self.summaries: Cache[Summary] | None = None
        if backend is not None:
            self.balances = Cache(
                BALANCE_CACHE,
                Balance,
                backend,
                policy=BALANCE_POLICY,
                local=ACCOUNT_LOCAL,
                clock=clock,
            )
            self.summaries = Cache(
                SUMMARY_CACHE,
                Summary,
                backend,
                policy=SUMMARY_POLICY,
                local=ACCOUNT_LOCAL,
                clock=clock,
            )

    def serve(self, balance: BalanceLoader, summary: SummaryLoader) -> None:
        """Where misses load from (the service), set once the service exists: the
        service needs `changed` first, as its hook."""
        self._load_balance = balance
        self._load_summary = summary

    def caches(self) -> dict[str, Cache[Any]]:
        named: dict[str, Cache[Any] | None] = {"balance": self.balances, "summary": self.summaries}
        return {label: cache for label, cache in named.items() if cache is not None}

    # --- lifecycle ---------------------------------------------------------------

    async def start(self, *, warm: bool = True) -> None:
        for cache in self.caches().values():
            await cache.start()
        if warm and self.balances is not None and self._pool is not None:
            self._warmer = asyncio.get_running_loop().create_task(
                self._warm_forever(), name="vip-balance-warmer"
            )

    async def aclose(self) -> None:
        warmer, self._warmer = self._warmer, None
        if warmer is not None:
            warmer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warmer
        for cache in self.caches().values():
            await cache.aclose()
        if self._backend is not None:
            await self._backend.aclose()
        for client in self._clients:
            await client.aclose()

    # --- reads -------------------------------------------------------------------

    async def balance(self, member_id: int, as_of: datetime | None) -> Balance:
        load = self._loaders()[0]
        if self.balances is None or as_of is not None:
            return await load(member_id, as_of)
        return await self._cached(self.balances, member_id, lambda: load(member_id, None))

    async def summary(self, member_id: int) -> Summary:
        load = self._loaders()[1]
        if self.summaries is None:
            return await load(member_id)
        return await self._cached(self.summaries, member_id, lambda: load(member_id))

    async def _cached(self, cache: Cache[V], member_id: int, load: Callable[[], Awaitable[V]]) -> V:
        # A missing member raises from the loader: the error reaches the caller and
        # nothing is cached.
        value = await cache.get_or_load(str(member_id), load)
        if value is None:  # only a loader returning None stores None, and ours never does
            raise RuntimeError(f"cache {cache.name} returned nothing for member {member_id}")
        return value

    def _loaders(self) -> tuple[BalanceLoader, SummaryLoader]:
        if self._load_balance is None or self._load_summary is None:
            raise RuntimeError("AccountReads.serve() was not called")
        return self._load_balance, self._load_summary

    # --- after a commit ----------------------------------------------------------

    async def changed(self, member_id: int) -> None:
        """A payment or charge for `member_id` committed: drop what it made wrong.
        Never raises (the cache degrades on its own)."""
        if self.balances is not None and self.summaries is not None:
            key = str(member_id)
            await asyncio.gather(self.balances.invalidate(key), self.summaries.invalidate(key))

    # --- keeping VIP balances warm -------------------------------------------------

    async def warm_vips(self) -> int:
        """One round: refresh every VIP member's balance. Returns how many were refreshed."""
        balances, pool = self.balances, self._pool
        if balances is None or pool is None:
            return 0
        load = self._loaders()[0]
        rows = await pool.fetch(_VIP_MEMBERS, "vip")
        gate = asyncio.Semaphore(VIP_WARM_CONCURRENCY)

        async def refresh(member_id: int) -> None:
            async with gate:
                try:
                    await balances.refresh(str(member_id), lambda: load(member_id, None))
                except Exception:  # one member's failure must not stop the round
                    log.warning("warming the balance of member %s failed", member_id, exc_info=True)

        await asyncio.gather(*(refresh(row["id"]) for row in rows))
        self.vip_refreshes += len(rows)
        return len(rows)

    async def _warm_forever(self) -> None:
        while True:
            try:
                await self.warm_vips()
            except (asyncpg.PostgresError, OSError):  # the next round retries
                log.warning("warming VIP balances failed", exc_info=True)
            except Exception:  # whatever it was, warming goes on next round
                log.exception("warming VIP balances failed")
            await self._clock.sleep(self._warm_every_s)


class SummaryInvalidator:
    """For a process that updates summaries outside the accounts service (an event
    consumer feeding a read model): after its commit, drop the members' cached
    summaries in every accounts process, fenced like the service's own invalidation."""

    def __init__(self, backend: RedisBackend) -> None:
        self._summaries: Cache[Summary] = Cache(SUMMARY_CACHE, Summary, backend, policy=SUMMARY_POLICY)

    async def changed(self, member_id: int) -> None:
        """Never raises: a failed invalidation is retried by the cache in the background."""
        await self._summaries.invalidate(str(member_id))

    async def aclose(self) -> None:
        await self._summaries.aclose()


class AccountCacheCollector(Collector):
    """The caches' counters (same families as the catalog's), read at scrape time."""

    def __init__(self, reads: AccountReads) -> None:
        self._reads = reads

    def collect(self) -> Iterator[Metric]:
        tiers = CounterMetricFamily(
            "bookvault_cache_tier_hits", "Reads answered by a tier", labels=["cache", "tier"]
        )
        families = {
            "misses": CounterMetricFamily(
                "bookvault_cache_misses", "Reads that found nothing", labels=["cache"]
            ),
            "fills": CounterMetricFamily(
                "bookvault_cache_fills", "Entries stored by a load", labels=["cache"]
            ),
            "fill_rejections": CounterMetricFamily(
                "bookvault_cache_fill_rejections",
                "Fills refused: invalidated while loading",
                labels=["cache"],
            ),
            "early_refreshes": CounterMetricFamily(
                "bookvault_cache_early_refreshes",
                "Refreshes ahead of expiry (XFetch, VIP warming)",
                labels=["cache"],
            ),
            "invalidations": CounterMetricFamily(
                "bookvault_cache_invalidations", "Invalidations after commits", labels=["cache"]
            ),
            "errors": CounterMetricFamily("bookvault_cache_errors", "Redis failures", labels=["cache"]),
            "degraded_loads": CounterMetricFamily(
                "bookvault_cache_degraded_reads",
                "Reads sent to the database because Redis failed",
                labels=["cache"],
            ),
        }
        hits = CounterMetricFamily("bookvault_cache_hits", "Reads answered by the cache", labels=["cache"])
        local = GaugeMetricFamily(
            "bookvault_cache_local_entries", "Entries in the local tier", labels=["cache"]
        )
        for label, cache in self._reads.caches().items():
            label = f"accounts.{label}"
            stats = cache.stats()
            hits.add_metric([label], stats.hits)
            tiers.add_metric([label, "l1"], stats.hits_l1)
            tiers.add_metric([label, "l2"], stats.hits_l2)
            for field, family in families.items():
                family.add_metric([label], getattr(stats, field))
            local.add_metric([label], stats.local_size)
        warmed = CounterMetricFamily(
            "bookvault_accounts_vip_refreshes", "VIP balances refreshed ahead of expiry"
        )
        warmed.add_metric([], self._reads.vip_refreshes)
        yield from (hits, tiers, *families.values(), local, warmed)


def account_reads(settings: Settings, pool: asyncpg.Pool | None = None) -> AccountReads:
    """The read side as the `cache` switch says: cached over the stack's Redis, or a
    pass-through (no Redis connection at all)."""
    if not settings.pattern_on("cache") or settings.redis_url is None:
        return AccountReads(backend=None)
    client = fail_fast(settings.redis_url, REDIS_TIMEOUT_S)
    # Pub/sub waits for messages as long as it likes; only connecting must be quick.
    listener: Redis = Redis.from_url(settings.redis_url, socket_connect_timeout=REDIS_TIMEOUT_S)
    # Reads and fills over the pipelined client (a fifth of redis-py's CPU per command).
    commands = PipelinedRedis.from_url(settings.redis_url, connect_timeout_s=REDIS_TIMEOUT_S)
    backend = RedisBackend(
        client, timeout=REDIS_TIMEOUT_S, pubsub_client=listener, owns_client=True, commands=commands
    )
    return AccountReads(backend=backend, pool=pool, clients=(listener, commands))
