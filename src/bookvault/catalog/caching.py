"""The catalog's read caches and request coalescing, behind the `cache` and
`coalescing` switches.

What is cached, always as the encoded JSON body (encoded once, at fill time; a hit
is a dict lookup and the bytes go straight out):

* `book`   GET /books/{id}, by id. In-process LRU over Redis; TTL with jitter and
           XFetch early refresh; a 404 is remembered too (negative caching).
           `available_copies` is part of the body, so the inventory count is
           cached here and a reservation taken or released invalidates the book.
* `list`   GET /books pages and
* `search` GET /search results: short TTL, keyed on the query *and the catalog
           generation*. Any change to any book can move it into or out of any
           page, so instead of hunting for affected keys every change writes a new
           generation token (`generation` cache); the next read builds new keys
           and old pages expire unread. Reading the generation is an L1 hit
           almost always, so a cached page still costs no Redis round trip.

Invalidation runs after the commit (`CatalogService` calls `book_changed` once the
transaction is over) through the cache's fenced `invalidate`/`set`, so a fill that
loaded the old row before the commit is refused rather than stored. The writing
process drops its own copies before the write answers, so its next read is fresh;
other catalog processes (the stack runs one) hear of it over Redis pub/sub within
milliseconds, and a read there in those milliseconds may still see the old value.

Redis unavailable: reads go to PostgreSQL (counted as degraded reads, logged once per
outage), never an error. Writes still succeed; invalidations that failed are
replayed by the cache, and the keys concerned bypass Redis until then.

Replicas (switch `replicas`): a cached or coalesced body is shared by every
caller, so it is loaded as fresh as the newest write it could show: a book after
every write to that book, a page after every write to the catalog
(`service.book_key`, `service.CATALOG_KEY`). The service notes those positions
before it invalidates, so a fill that starts after the invalidation is served by
a replica only once that replica has replayed the write, else by the primary:
a replica behind never puts the old row back into the cache.

Coalescing: with `cache` on, concurrent misses for one key in a process share one
load (the cache's single-flight), and processes share one through the fill lease;
that is part of how the cache fills and cannot be turned off separately. With
`cache` off and `coalescing` on, concurrent identical reads share one database
query (`patterns.coalesce.SingleFlight`) and nothing is kept afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import msgspec
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bookvault.catalog.errors import BookNotFound
from bookvault.catalog.purge import PurgePublisher
from bookvault.catalog.service import CATALOG_KEY, CatalogService, book_key
from bookvault.config import Settings
from bookvault.patterns.cache import Cache, CachePolicy, LocalPolicy, RedisBackend
from bookvault.patterns.cache.tokens import new_token
from bookvault.patterns.clock import Clock
from bookvault.patterns.coalesce import SingleFlight
from bookvault.patterns.pipelined_redis import PipelinedRedis
from bookvault.redis_clients import fail_fast

__all__ = [
    "BOOK_POLICY",
    "LIST_POLICY",
    "CacheCollector",
    "CatalogReads",
    "catalog_reads",
]

# Book details change rarely and every change invalidates them: long TTL; the local
# tier's TTL bounds staleness should an invalidation message be lost.
BOOK_POLICY = CachePolicy(ttl=300.0, jitter=0.1, negative_ttl=10.0, early_beta=1.0)
# Lists and searches: short-lived, and cut off by the generation on any change.
LIST_POLICY = CachePolicy(ttl=30.0, jitter=0.1, negative_ttl=None, early_beta=1.0)
# The generation lives long; it changes only by being replaced.
GENERATION_POLICY = CachePolicy(ttl=3600.0, jitter=0.1, negative_ttl=None, early_beta=0.0)
BOOK_LOCAL = LocalPolicy(maxsize=20_000, ttl=30.0)
LIST_LOCAL = LocalPolicy(maxsize=2_000, ttl=10.0)
GENERATION_LOCAL = LocalPolicy(maxsize=1, ttl=30.0)
# Redis is a few hundred microseconds away; past this it counts as down.
REDIS_TIMEOUT_S = 0.25
_GENERATION_KEY = "all"

_encode = msgspec.json.Encoder().encode


class CatalogReads:
    """The read side of the public API as encoded JSON bodies, cached and/or
    coalesced as configured; `book_changed` is the service's after-commit hook."""

    def __init__(
        self,
        service: CatalogService,
        *,
        backend: RedisBackend | None,
        coalescing: bool,
        publisher: PurgePublisher | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._service = service
        self._publisher = publisher
        self._flights: SingleFlight[Any, bytes | None] | None = (
            SingleFlight() if coalescing and backend is None else None
        )
        self.book: Cache[bytes] | None = None
        self.list: Cache[bytes] | None = None
        self.search: Cache[bytes] | None = None
        self.generation: Cache[str] | None = None
        if backend is not None:
            self.book = Cache(
                "catalog.book.v1", bytes, backend, policy=BOOK_POLICY, local=BOOK_LOCAL, clock=clock
            )
            self.list = Cache(
                "catalog.list.v1", bytes, backend, policy=LIST_POLICY, local=LIST_LOCAL, clock=clock
            )
            self.search = Cache(
                "catalog.search.v1", bytes, backend, policy=LIST_POLICY, local=LIST_LOCAL, clock=clock
            )
            self.generation = Cache(
                "catalog.generation.v1",
                str,
                backend,
                policy=GENERATION_POLICY,
                local=GENERATION_LOCAL,
                clock=clock,
            )

    def caches(self) -> dict[str, Cache[Any]]:
        """The caches by metrics label (empty with caching off)."""
        named = {"book": self.book, "list": self.list, "search": self.search, "generation": self.generation}
        return {label: cache for label, cache in named.items() if cache is not None}

    @property
    def flights(self) -> SingleFlight[Any, bytes | None] | None:
        return self._flights

    async def start(self) -> None:
        for cache in self.caches().values():
            await cache.start()

    async def aclose(self) -> None:
        for cache in self.caches().values():
            await cache.aclose()

    # --- reads ---------------------------------------------------------------

    async def book_json(self, book_id: int) -> bytes:
        body = await self._read(self.book, ("book", book_id), str(book_id), lambda: self._load_book(book_id))
        if body is None:
            raise BookNotFound(book_id)
        return body

    async def list_json(self, *, genre: str | None, author: str | None, limit: int, after_id: int) -> bytes:
        async def load() -> bytes:
            page = await self._service.list_books(
                genre=genre, author=author, limit=limit, after_id=after_id, after=CATALOG_KEY
            )
            return _encode(page)

        args = (genre, author, limit, after_id)
        return await self._read_page(self.list, ("list", *args), args, load)

    async def search_json(self, query: str, limit: int) -> bytes:
        async def load() -> bytes:
            return _encode(await self._service.search(query, limit, after=CATALOG_KEY))

        return await self._read_page(self.search, ("search", query, limit), (query, limit), load)

    async def _load_book(self, book_id: int) -> bytes | None:
        try:
            return _encode(await self._service.get_book(book_id, after=book_key(book_id)))
        except BookNotFound:
            return None

    async def _read(
        self,
        cache: Cache[bytes] | None,
        flight_key: tuple[Any, ...],
        key: str,
        load: Callable[[], Awaitable[bytes | None]],
    ) -> bytes | None:
        if cache is not None:
            return await cache.get_or_load(key, load)
        if self._flights is not None:
            return await self._flights.run(flight_key, load)
        return await load()

    async def _read_page(
        self,
        cache: Cache[bytes] | None,
        flight_key: tuple[Any, ...],
        args: tuple[Any, ...],
        load: Callable[[], Awaitable[bytes]],
    ) -> bytes:
        key = ""
        if cache is not None:
            key = _encode([await self._generation(), *args]).decode()
        body = await self._read(cache, flight_key, key, load)
        if body is None:  # the loaders always return a body
            raise RuntimeError("a page loader returned nothing")
        return body

    async def _generation(self) -> str:
        generation = self.generation
        if generation is None:
            return ""

        async def fresh() -> str:
            return new_token()

        token = await generation.get_or_load(_GENERATION_KEY, fresh)
        return token or ""

    # --- after a commit ------------------------------------------------------

    async def book_changed(self, book_id: int) -> None:
        """Drop what the change made wrong, here and for the gateway. Never raises."""
        if self.book is not None and self.generation is not None:
            await asyncio.gather(
                self.book.invalidate(str(book_id)), self.generation.set(_GENERATION_KEY, new_token())
            )
        # Only after our own caches dropped the old state: the gateway refetches from us.
        if self._publisher is not None:
            await self._publisher.book_changed(book_id)


class CacheCollector(Collector):
    """The caches' counters, read from their stats snapshots at scrape time."""

    def __init__(self, reads: CatalogReads, publisher: PurgePublisher | None) -> None:
        self._reads = reads
        self._publisher = publisher

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        def counter(name: str, doc: str) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=["cache"])

        hits = counter("bookvault_cache_hits", "Reads answered by the cache (either tier)")
        tier_hits = CounterMetricFamily(
            "bookvault_cache_tier_hits", "Reads answered by a tier", labels=["cache", "tier"]
        )
        misses = counter("bookvault_cache_misses", "Reads that found nothing and loaded")
        negative = counter("bookvault_cache_negative_hits", "Hits on a remembered 404")
        stale = counter("bookvault_cache_stale_serves", "Reads answered past TTL while refreshing")
        fills = counter("bookvault_cache_fills", "Entries stored by a load")
        rejected = counter("bookvault_cache_fill_rejections", "Fills refused: invalidated while loading")
        refreshes = counter("bookvault_cache_early_refreshes", "Background (XFetch) refreshes")
        evictions = counter("bookvault_cache_evictions", "Local entries pushed out by the size bound")
        errors = counter("bookvault_cache_errors", "Redis failures and unreadable entries")
        degraded = counter(
            "bookvault_cache_degraded_reads", "Reads sent to the database because Redis failed"
        )
        coalesced = counter("bookvault_cache_coalesced", "Reads that shared another read's flight")
        invalidations = counter("bookvault_cache_invalidations", "Invalidations and write-throughs")
        local_size = GaugeMetricFamily(
            "bookvault_cache_local_entries", "Entries in the local tier", labels=["cache"]
        )
        for label, cache in self._reads.caches().items():
            stats = cache.stats()
            hits.add_metric([label], stats.hits)
            tier_hits.add_metric([label, "l1"], stats.hits_l1)
            tier_hits.add_metric([label, "l2"], stats.hits_l2)
            misses.add_metric([label], stats.misses)
            negative.add_metric([label], stats.negative_hits)
            stale.add_metric([label], stats.stale_serves)
            fills.add_metric([label], stats.fills)
            rejected.add_metric([label], stats.fill_rejections)
            refreshes.add_metric([label], stats.early_refreshes)
            evictions.add_metric([label], stats.evictions)
            errors.add_metric([label], stats.errors)
            degraded.add_metric([label], stats.degraded_loads)
            coalesced.add_metric([label], stats.coalesced)
            invalidations.add_metric([label], stats.invalidations)
            local_size.add_metric([label], stats.local_size)
        flights = self._reads.flights
        if flights is not None:
            coalesced.add_metric(["reads"], flights.shared)
        yield from (hits, tier_hits, misses, negative, stale, fills, rejected, refreshes)
        yield from (evictions, errors, degraded, coalesced, invalidations, local_size)
        if self._publisher is not None:
            published = CounterMetricFamily(
                "bookvault_cache_purges_published", "Purge messages sent to the gateway"
            )
            published.add_metric([], self._publisher.published)
            failed = CounterMetricFamily(
                "bookvault_cache_purge_errors", "Purge messages that could not be sent"
            )
            failed.add_metric([], self._publisher.errors)
            yield from (published, failed)


@contextlib.asynccontextmanager
async def catalog_reads(
    settings: Settings, service_for: Callable[..., CatalogService]
) -> AsyncIterator[tuple[CatalogService, CatalogReads | None, PurgePublisher | None]]:
    """The service and its read side as the switches say, for the app's lifespan.

    `service_for(on_change)` builds the service with the after-commit hook. With
    `cache` and `coalescing` off (and no gateway cache to purge) there is no read
    side and no Redis: the service behaves exactly as without this module.
    """
    use_cache = settings.pattern_on("cache")
    coalescing = settings.pattern_on("coalescing")
    purge = settings.pattern_on("gateway_cache") or use_cache
    needs_redis = (use_cache or purge) and settings.redis_url is not None
    client = fail_fast(settings.redis_url, REDIS_TIMEOUT_S) if needs_redis and settings.redis_url else None
    # Pub/sub waits for messages as long as it likes; only connecting must be quick.
    listener = (
        Redis.from_url(
            settings.redis_url, socket_connect_timeout=REDIS_TIMEOUT_S, retry=Retry(NoBackoff(), 0)
        )
        if client is not None and settings.redis_url
        else None
    )
    publisher = PurgePublisher(client, timeout=REDIS_TIMEOUT_S) if client is not None and purge else None
    # Reads and fills go over the pipelined client (a fifth of redis-py's CPU per
    # command); redis-py keeps pub/sub and the purge publisher.
    commands = (
        PipelinedRedis.from_url(settings.redis_url, connect_timeout_s=REDIS_TIMEOUT_S)
        if client is not None and use_cache and settings.redis_url
        else None
    )
    backend = (
        RedisBackend(client, timeout=REDIS_TIMEOUT_S, pubsub_client=listener, commands=commands)
        if client is not None and use_cache
        else None
    )
    if backend is None and not coalescing and publisher is None:
        yield service_for(None), None, None
        return
    holder: list[CatalogReads] = []

    async def on_change(book_id: int) -> None:
        await holder[0].book_changed(book_id)

    service = service_for(on_change)
    reads = CatalogReads(service, backend=backend, coalescing=coalescing, publisher=publisher)
    holder.append(reads)
    try:
        await reads.start()
        yield service, reads, publisher
    finally:
        await reads.aclose()
        if backend is not None:
            await backend.aclose()
        for redis in (client, listener, commands):
            if redis is not None:
                await redis.aclose()
