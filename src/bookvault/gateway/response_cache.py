"""The gateway's response cache: a shared HTTP cache (RFC 9111) in front of the services.

What is stored. Only `200` answers to GET (HEAD is answered from the GET's entry and
fetched upstream as a GET, like nginx's `proxy_cache_convert_head`), read whole, on
routes open to anonymous readers (the catalog), and only when the upstream allows a
shared cache to keep them: not `no-store`, `private` or `no-cache`, no `Vary: *`, no
`Set-Cookie`. Freshness comes from `s-maxage`, else `max-age` (less the upstream's
`Age`), else the route's default TTL from settings (`gateway_cache_ttls`); a path
with no default and no explicit lifetime is not stored. `stale-while-revalidate`
and `stale-if-error` (RFC 5861) widen the window in which an entry may still be
served, unless `must-revalidate` / `proxy-revalidate` forbid stale answers.

Authenticated requests. RFC 9111 §3.5 lets a shared cache answer a request carrying
`Authorization` only when the response says so (`public`, `s-maxage`). Here the
route table says it instead: a route with anonymous reads serves every principal the
same representation, so an authenticated GET may be answered from, and fill, the
shared cache. The upstream keeps the last word: a response marked `private` or
`no-store` is never stored and never handed to anyone else (requests coalesced on it
fetch their own), and a representation that does depend on the caller must say
`Vary: Authorization`, which keys the entry on the token. Routes without anonymous
reads (borrowing, accounts: member data) are never cached: `X-Cache: BYPASS`.

The key: method class (GET and HEAD share), path and query, and the values of the
request headers the response's `Vary` names. `Accept-Encoding` is keyed on the coding
the compression stage will choose for it, not the raw value, so the many spellings
browsers send share at most one entry per coding; each entry holds the encoded bytes,
so a hit is never compressed again.

Validators. Every stored or fetched `200` gets a strong `ETag` (the upstream's if
it sent one, else a hash of the content coding and the body, so each coding of a
representation has its own); `If-None-Match` matching it (weak comparison, RFC 9110
§13.1.2) is answered `304`, on hits and misses alike. Conditional request headers
are not sent upstream: the cache needs the full body to store.

Tiers. An in-process LRU (`gateway_cache_max_entries`) answers hits without any
Redis round trip; Redis is the shared tier, one hash per path-and-query holding its
variants, read with one HGETALL on a local miss. One upstream fetch per key at a
time in a process (`SingleFlight`, like nginx `proxy_cache_lock`).

Purges. Services publish `{"paths": [...], "prefixes": [...]}` on the Redis channel
`bookvault:purge` after they commit a change. Every gateway process evicts local
entries whose path equals one of `paths` or whose target (`path?query`, with the `?`
even when the query is empty) starts with one of `prefixes`, and remembers the purge
for as long as an entry can live. Shared-tier entries are not deleted but checked
when read: an entry whose upstream fetch started before a matching purge (or before
this process's subscription went live) is ignored and refetched. A fill whose fetch
overlapped a purge in this process is not kept locally. So a write committed before
the purge is published is never hidden by an older copy, on any process.

Redis trouble. The cache is used only while the purge subscription is live: when it
drops, the local tier is cleared and requests go upstream (`X-Cache: MISS`) until it
is back; shared-tier errors count as misses. The cache never turns an upstream answer
into an error of its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence

import msgspec
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from bookvault.config import ConfigError, Settings
from bookvault.gateway.cache_control import CacheControl, parse_cache_control
from bookvault.gateway.compression import Compression
from bookvault.gateway.exchange import Exchange, GatewayProblem, Handler, Reply
from bookvault.patterns.cache import CacheBackendError, RedisInvalidationHub
from bookvault.patterns.cache.redis_backend import call_redis
from bookvault.patterns.clock import Clock, SystemClock
from bookvault.patterns.coalesce import SingleFlight

__all__ = [
    "PURGE_CHANNEL",
    "CachedResponse",
    "ResponseCache",
    "ResponseCacheCollector",
    "RouteTtls",
    "etag_matches",
    "parse_route_ttls",
    "response_cache_stage",
]

log = logging.getLogger(__name__)

PURGE_CHANNEL = "bookvault:purge"
_KEY_PREFIX = "bookvault:gwcache:"
# No entry lives longer than this, whatever the upstream says; purges are remembered
# this long (plus the longest fetch) so they can still veto an entry read later.
MAX_LIFETIME_S = 3600.0
_PURGE_MEMORY_S = MAX_LIFETIME_S + 60.0
_MAX_PURGE_RECORDS = 10_000
_REDIS_TIMEOUT_S = 0.25
_REDIS_RETRY_AFTER_S = 1.0
_CONDITIONAL = frozenset(
    {"if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range"}
)
# Headers a stored response is sent without: per-answer values the cache sets itself.
_NOT_STORED = frozenset({b"age", b"x-cache", b"set-cookie"})
_NOT_MODIFIED_KEEP = frozenset({b"etag", b"cache-control", b"vary", b"content-location", b"date", b"expires"})


# --- settings -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class RouteTtls:
    """Default freshness per path prefix, for responses that state none; longest prefix wins."""

    by_prefix: tuple[tuple[str, float], ...] = ()

    def ttl_for(self, path: str) -> float | None:
        for prefix, ttl in self.by_prefix:
            if path == prefix or path.startswith(prefix + "/"):
                return ttl
        return None


def parse_route_ttls(items: Sequence[str]) -> RouteTtls:
    """`("/api/catalog/v1/books=30", ...)` → RouteTtls; raises ValueError on a bad item."""
    parsed: list[tuple[str, float]] = []
    for item in items:
        prefix, sep, seconds = item.rpartition("=")
        if not sep or not prefix.startswith("/"):
            raise ValueError(f"expected '/path/prefix=seconds', got {item!r}")
        ttl = float(seconds)
        if not 0 < ttl <= MAX_LIFETIME_S:
            raise ValueError(f"{item!r}: the TTL must be in (0, {MAX_LIFETIME_S:g}] seconds")
        parsed.append((prefix.rstrip("/") or "/", ttl))
    parsed.sort(key=lambda pair: len(pair[0]), reverse=True)
    return RouteTtls(tuple(parsed))


# --- entries ------------------------------------------------------------------


class CachedResponse(msgspec.Struct, frozen=True, array_like=True):
    """One stored variant. Times are wall-clock seconds, comparable across processes."""

    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: bytes
    path: str
    target: str  # path?query, the '?' always present
    variant: str  # the Vary part of the key
    vary: tuple[str, ...]
    fetched_at: float  # when the upstream fetch began: what purges are compared with
    stored_at: float
    fresh_until: float
    stale_while_revalidate_until: float
    stale_if_error_until: float

    @property
    def expires_at(self) -> float:
        return max(self.fresh_until, self.stale_while_revalidate_until, self.stale_if_error_until)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CachedResponse)


def strong_etag(content_coding: bytes, body: bytes) -> bytes:
    digest = hashlib.blake2b(content_coding + b"\0" + body, digest_size=16).hexdigest()
    return b'"' + digest.encode("ascii") + b'"'


def etag_matches(if_none_match: str, etag: bytes) -> bool:
    """`If-None-Match` against an ETag, by weak comparison (RFC 9110 §13.1.2)."""
    value = if_none_match.strip()
    if value == "*":
        return True
    ours = etag.decode("latin-1")
    ours = ours[2:] if ours.startswith("W/") else ours
    for candidate in value.split(","):
        tag = candidate.strip()
        tag = tag[2:] if tag.startswith("W/") else tag
        if tag == ours:
            return True
    return False


# --- metrics ------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Counters:
    hits: int = 0
    misses: int = 0
    stale: int = 0
    bypasses: int = 0
    not_modified: int = 0
    fills: int = 0
    purges: int = 0
    purged_entries: int = 0
    resets: int = 0
    errors: int = 0


class ResponseCacheCollector(Collector):
    """Exports the counters as `bookvault_cache_*_total{cache="gateway"}`."""

    def __init__(self, counters: _Counters) -> None:
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        c = self._counters
        rows = (
            ("bookvault_cache_hits", "Reads answered by the cache", c.hits),
            ("bookvault_cache_misses", "Reads that went to the origin", c.misses),
            ("bookvault_cache_stale_serves", "Reads answered by a stale entry (RFC 5861)", c.stale),
            (
                "bookvault_cache_bypasses",
                "Reads the cache may not answer (private routes, no-store)",
                c.bypasses,
            ),
            ("bookvault_cache_not_modified", "Conditional reads answered 304", c.not_modified),
            ("bookvault_cache_fills", "Entries stored", c.fills),
            ("bookvault_cache_purges", "Purge messages applied", c.purges),
            ("bookvault_cache_purged_entries", "Local entries evicted by purges", c.purged_entries),
            (
                "bookvault_cache_local_resets",
                "Local tier cleared because purges may have been missed",
                c.resets,
            ),
            ("bookvault_cache_errors", "Shared-tier failures (served as misses)", c.errors),
        )
        for name, doc, value in rows:
            family = CounterMetricFamily(name, doc, labels=["cache"])
            family.add_metric(["gateway"], value)
            yield family


# --- the local tier and the purge log ---------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Purge:
    at: float
    paths: frozenset[str]
    prefixes: tuple[str, ...]

    def matches(self, path: str, target: str) -> bool:
        return path in self.paths or target.startswith(self.prefixes)


def _parse_purge(data: str) -> tuple[frozenset[str], tuple[str, ...]] | None:
    try:
        message = json.loads(data)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    paths = message.get("paths", [])
    prefixes = message.get("prefixes", [])
    if not isinstance(paths, list) or not isinstance(prefixes, list):
        return None
    return (
        frozenset(p for p in paths if isinstance(p, str)),
        tuple(p for p in prefixes if isinstance(p, str) and p),
    )


@dataclasses.dataclass(slots=True)
class _Flight:
    owner: object
    reply: Reply
    entry: CachedResponse | None


class ResponseCache:
    """The pipeline stage. `redis` None runs it standalone: one process, local tier only,
    purged only by `purge()` and by writes through this process (tests, single node)."""

    def __init__(
        self,
        ttls: RouteTtls,
        *,
        redis: Redis | None,
        max_entries: int = 10_000,
        choose_coding: Callable[[Exchange], str | None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._ttls = ttls
        self._redis = redis
        self._max_entries = max_entries
        self._choose_coding = choose_coding
        self._clock = clock or SystemClock()
        self.counters = _Counters()
        self.collector = ResponseCacheCollector(self.counters)
        self._local: collections.OrderedDict[str, CachedResponse] = collections.OrderedDict()
        self._vary: collections.OrderedDict[str, tuple[str, ...]] = collections.OrderedDict()
        self._purges: collections.deque[_Purge] = collections.deque()
        self._purge_seq = 0
        self._live = redis is None
        self._live_since = -math.inf if redis is None else math.inf
        self._flights: SingleFlight[str, _Flight] = SingleFlight()
        self._hub: RedisInvalidationHub | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._l2_down_until = -math.inf
        self._went_live = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        if self._redis is None:
            return
        self._hub = RedisInvalidationHub(self._redis, clock=self._clock)
        await self._hub.subscribe(PURGE_CHANNEL, self)
        # Do not hold up startup for Redis: until purges flow, requests simply miss.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self._went_live.wait()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._hub is not None:
            await self._hub.aclose()
            self._hub = None
        if self._redis is not None:
            await self._redis.aclose()

    @property
    def live(self) -> bool:
        return self._live

    # InvalidationListener: called by the hub with each message on the purge channel.

    def invalidated(self, key: str) -> None:
        parsed = _parse_purge(key)
        if parsed is None:
            log.warning("ignoring a malformed purge message: %r", key[:200])
            return
        self.purge(parsed[0], parsed[1])

    def reset(self, *, live: bool) -> None:
        self._local.clear()
        self._vary.clear()
        self._purge_seq += 1
        self.counters.resets += 1
        self._live = live
        if live:
            self._went_live.set()
        # Whatever was stored before purges were flowing may have missed one.
        self._live_since = self._clock.time() if live else math.inf

    def purge(self, paths: frozenset[str] | set[str], prefixes: tuple[str, ...]) -> int:
        """Evict matching local entries and remember the purge; returns how many went."""
        record = _Purge(self._clock.time(), frozenset(paths), prefixes)
        self._purge_seq += 1
        self.counters.purges += 1
        purges = self._purges
        purges.append(record)
        horizon = record.at - _PURGE_MEMORY_S
        while purges and (purges[0].at < horizon or len(purges) > _MAX_PURGE_RECORDS):
            dropped = purges.popleft()
            if dropped.at >= horizon:  # forgotten early: distrust everything older than it
                self._live_since = max(self._live_since, dropped.at)
        doomed = [key for key, entry in self._local.items() if record.matches(entry.path, entry.target)]
        for key in doomed:
            del self._local[key]
        self.counters.purged_entries += len(doomed)
        return len(doomed)

    # --- the stage --------------------------------------------------------------

    async def __call__(self, exchange: Exchange, call_next: Handler) -> Reply:
        method = exchange.method
        if method not in ("GET", "HEAD"):
            reply = await call_next(exchange)
            if reply.status < 400 and exchange.route.anonymous_reads:
                # RFC 9111 §4.4: a successful unsafe request invalidates its target here;
                # the service's purge message does the same for every process.
                self.purge({exchange.path}, ())
            return reply
        if not exchange.route.anonymous_reads:
            self.counters.bypasses += 1
            return _tagged(await call_next(exchange), b"BYPASS")
        request_cc = parse_cache_control(_header_values(exchange, "cache-control"))
        if request_cc.no_store:
            self.counters.bypasses += 1
            return _tagged(await call_next(exchange), b"BYPASS")
        if not self._live:
            self.counters.misses += 1
            return self._validated(await call_next(exchange), exchange, b"MISS")
        query = exchange.scope.get("query_string", b"")
        target = exchange.path + "?" + (query.decode("latin-1") if isinstance(query, bytes) else "")
        now = self._clock.time()
        entry = await self._lookup(exchange, target, now)
        revalidate = request_cc.no_cache or request_cc.max_age == 0 or _pragma_no_cache(exchange)
        if entry is not None and not revalidate:
            if now < entry.fresh_until:
                self.counters.hits += 1
                return self._from_entry(entry, exchange, b"HIT", now)
            if now < entry.stale_while_revalidate_until:
                self.counters.stale += 1
                self._refresh_in_background(exchange, call_next, target)
                return self._from_entry(entry, exchange, b"STALE", now)
        fallback = entry if entry is not None and now < entry.stale_if_error_until else None
        self.counters.misses += 1
        try:
            reply = await self._fetch(exchange, call_next, target)
        except GatewayProblem:
            if fallback is None:
                raise
            self.counters.stale += 1
            return self._from_entry(fallback, exchange, b"STALE", self._clock.time())
        if fallback is not None and reply.status >= 500:
            if reply.stream is not None:
                await reply.stream.aclose()
            self.counters.stale += 1
            return self._from_entry(fallback, exchange, b"STALE", self._clock.time())
        return reply

    # --- lookups ----------------------------------------------------------------

    def _variant(self, exchange: Exchange, vary: tuple[str, ...]) -> str:
        parts: list[str] = []
        for name in vary:
            if name == "accept-encoding" and self._choose_coding is not None:
                parts.append(f"{name}={self._choose_coding(exchange) or 'identity'}")
            else:
                parts.append(f"{name}={', '.join(_header_values(exchange, name))}")
        return "\n".join(parts)

    async def _lookup(self, exchange: Exchange, target: str, now: float) -> CachedResponse | None:
        vary = self._vary.get(target)
        if vary is not None:
            key = target + "\n" + self._variant(exchange, vary)
            entry = self._local.get(key)
            if entry is not None:
                if now < entry.expires_at:
                    self._local.move_to_end(key)
                    return entry
                del self._local[key]
        if self._redis is None or now < self._l2_down_until:
            return None
        try:
            stored = await call_redis(self._redis.hgetall(_KEY_PREFIX + "{" + target + "}"), _REDIS_TIMEOUT_S)
        except CacheBackendError as exc:
            self._shared_failed(exc)
            return None
        seq = self._purge_seq
        for data in stored.values():
            if not isinstance(data, bytes):
                continue
            try:
                candidate = _decoder.decode(data)
            except msgspec.DecodeError:
                self.counters.errors += 1
                continue
            if candidate.variant != self._variant(exchange, candidate.vary):
                continue
            if now >= candidate.expires_at or self._purged_after(candidate):
                return None
            if seq == self._purge_seq:  # no purge arrived while Redis answered
                self._keep_local(candidate)
            return candidate
        return None

    def _purged_after(self, entry: CachedResponse) -> bool:
        """Whether a purge this process knows of may postdate the entry's content."""
        if entry.fetched_at <= self._live_since:
            return True
        for record in reversed(self._purges):
            if record.at < entry.fetched_at:
                return False
            if record.matches(entry.path, entry.target):
                return True
        return False

    def _keep_local(self, entry: CachedResponse) -> None:
        key = entry.target + "\n" + entry.variant
        self._local[key] = entry
        self._local.move_to_end(key)
        self._vary[entry.target] = entry.vary
        self._vary.move_to_end(entry.target)
        while len(self._local) > self._max_entries:
            self._local.popitem(last=False)
        while len(self._vary) > self._max_entries:
            self._vary.popitem(last=False)

    def _shared_failed(self, exc: Exception) -> None:
        self.counters.errors += 1
        if self._clock.time() >= self._l2_down_until:
            log.warning(
                "gateway cache: shared tier failed (%s); skipping it for %ss", exc, _REDIS_RETRY_AFTER_S
            )
        self._l2_down_until = self._clock.time() + _REDIS_RETRY_AFTER_S

    # --- fetching and storing -------------------------------------------------------

    async def _fetch(self, exchange: Exchange, call_next: Handler, target: str) -> Reply:
        """The upstream's answer, through one flight per key; stored when allowed."""
        flight_key = self._flight_key(exchange, target)
        owner = object()
        flight = await self._flights.run(flight_key, lambda: self._fill(exchange, call_next, target, owner))
        if flight.owner is owner:
            if flight.entry is not None:
                return self._from_entry(flight.entry, exchange, b"MISS", self._clock.time())
            return self._unstored(flight.reply, exchange)
        entry = flight.entry
        if entry is not None and entry.variant == self._variant(exchange, entry.vary):
            return self._from_entry(entry, exchange, b"MISS", self._clock.time())
        # Not shareable with this request (private, not stored, another variant): its own fetch.
        flight = await self._fill(exchange, call_next, target, owner)
        if flight.entry is not None:
            return self._from_entry(flight.entry, exchange, b"MISS", self._clock.time())
        return self._unstored(flight.reply, exchange)

    def _flight_key(self, exchange: Exchange, target: str) -> str:
        # Before the first response the Vary is unknown; coalesced callers check theirs after.
        vary = self._vary.get(target) or (("accept-encoding",) if self._choose_coding else ())
        return target + "\n" + self._variant(exchange, vary)

    async def _fill(self, exchange: Exchange, call_next: Handler, target: str, owner: object) -> _Flight:
        seq = self._purge_seq
        fetched_at = self._clock.time()
        upstream = dataclasses.replace(
            exchange,
            method="GET",
            head=dataclasses.replace(
                exchange.head, forward=[pair for pair in exchange.head.forward if pair[0] not in _CONDITIONAL]
            ),
        )
        reply = await call_next(upstream)
        entry = self._entry_for(reply, exchange, target, fetched_at)
        if entry is None:
            return _Flight(owner, reply, None)
        if seq != self._purge_seq or not self._live:
            # A purge (or a gap in them) overlapped the fetch: the body may predate the
            # write. It answers the request that fetched it; coalesced requests, which
            # may have arrived after the purge, fetch their own; nothing is kept.
            return _Flight(owner, reply, None)
        self.counters.fills += 1
        if self._redis is not None and self._clock.time() >= self._l2_down_until:
            await self._store_shared(entry)
        # Purged while Redis stored it? The shared copy is vetoed by the purge log
        # everywhere; only the local tier needs the check again.
        if seq == self._purge_seq and self._live:
            self._keep_local(entry)
        return _Flight(owner, reply, entry)

    async def _store_shared(self, entry: CachedResponse) -> None:
        assert self._redis is not None
        key = _KEY_PREFIX + "{" + entry.target + "}"
        ttl_ms = max(1, int((entry.expires_at - entry.stored_at) * 1000))
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, entry.variant, _encoder.encode(entry))
                # The hash lives as long as its longest-lived variant may.
                pipe.pexpire(key, ttl_ms, gt=True)
                pipe.pexpire(key, ttl_ms, nx=True)
                await call_redis(pipe.execute(), _REDIS_TIMEOUT_S)
        except CacheBackendError as exc:
            self._shared_failed(exc)

    def _entry_for(
        self, reply: Reply, exchange: Exchange, target: str, fetched_at: float
    ) -> CachedResponse | None:
        if reply.status != 200 or reply.stream is not None:
            return None
        cc_values: list[str] = []
        vary: list[str] = []
        age = 0.0
        etag: bytes | None = None
        coding = b""
        headers: list[tuple[bytes, bytes]] = []
        for key, value in reply.headers:
            if key == b"set-cookie":
                return None
            if key == b"cache-control":
                cc_values.append(value.decode("latin-1"))
            elif key == b"vary":
                vary.extend(
                    token.strip().lower() for token in value.decode("latin-1").split(",") if token.strip()
                )
            elif key == b"age":
                with contextlib.suppress(ValueError):
                    age = max(0.0, float(value))
            elif key == b"etag":
                etag = value
            elif key == b"content-encoding":
                coding = value
            if key not in _NOT_STORED:
                headers.append((key, value))
        if "*" in vary:
            return None
        cc = parse_cache_control(cc_values)
        if cc.no_store or cc.private or cc.no_cache:
            return None
        freshness = _freshness(cc, self._ttls.ttl_for(exchange.path), age)
        if freshness is None:
            return None
        stale_ok = not cc.must_revalidate
        swr = cc.stale_while_revalidate if stale_ok else 0
        sie = cc.stale_if_error if stale_ok else 0
        if freshness <= 0 and swr <= 0 and sie <= 0:
            return None
        if etag is None:
            etag = strong_etag(coding, reply.body)
            headers.append((b"etag", etag))
        now = self._clock.time()
        fresh_until = now + min(freshness, MAX_LIFETIME_S)
        names = tuple(dict.fromkeys(vary))
        return CachedResponse(
            headers=headers,
            body=reply.body,
            etag=etag,
            path=exchange.path,
            target=target,
            variant=self._variant(exchange, names),
            vary=names,
            fetched_at=fetched_at,
            stored_at=now,
            fresh_until=fresh_until,
            stale_while_revalidate_until=min(fresh_until + swr, now + MAX_LIFETIME_S),
            stale_if_error_until=min(fresh_until + sie, now + MAX_LIFETIME_S),
        )

    def _refresh_in_background(self, exchange: Exchange, call_next: Handler, target: str) -> None:
        flight_key = self._flight_key(exchange, target)
        if self._flights.in_flight(flight_key):
            return
        owner = object()

        async def refresh() -> None:
            try:
                await self._flights.run(flight_key, lambda: self._fill(exchange, call_next, target, owner))
            except GatewayProblem as problem:
                log.info("gateway cache: background refresh of %s failed: %s", target, problem.detail)
            except Exception:
                log.exception("gateway cache: background refresh of %s failed", target)

        task = asyncio.get_running_loop().create_task(refresh())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- answers ----------------------------------------------------------------

    def _from_entry(self, entry: CachedResponse, exchange: Exchange, state: bytes, now: float) -> Reply:
        """The entry as this request's answer (HEAD drops the body when it is sent)."""
        extra = [(b"x-cache", state)]
        if state != b"MISS":
            extra.append((b"age", str(max(0, int(now - entry.stored_at))).encode("ascii")))
        if_none_match = _header_values(exchange, "if-none-match")
        if if_none_match and etag_matches(", ".join(if_none_match), entry.etag):
            self.counters.not_modified += 1
            kept = [pair for pair in entry.headers if pair[0] in _NOT_MODIFIED_KEEP]
            return Reply(304, kept + extra)
        return Reply(200, [*entry.headers, *extra], entry.body)

    def _unstored(self, reply: Reply, exchange: Exchange) -> Reply:
        cc = parse_cache_control(
            value.decode("latin-1") for key, value in reply.headers if key == b"cache-control"
        )
        if cc.private or cc.no_store:
            self.counters.bypasses += 1
            return _tagged(reply, b"BYPASS")
        return self._validated(reply, exchange, b"MISS")

    def _validated(self, reply: Reply, exchange: Exchange, state: bytes) -> Reply:
        """A shareable 200 gets an ETag (if it has none) and a 304 when it matches."""
        if reply.status != 200 or reply.stream is not None:
            return _tagged(reply, state)
        etag: bytes | None = None
        coding = b""
        for key, value in reply.headers:
            if key == b"etag":
                etag = value
            elif key == b"content-encoding":
                coding = value
            elif key == b"cache-control" and (b"private" in value or b"no-store" in value):
                return _tagged(reply, state)
        if etag is None:
            etag = strong_etag(coding, reply.body)
            reply.headers.append((b"etag", etag))
        if_none_match = _header_values(exchange, "if-none-match")
        if if_none_match and etag_matches(", ".join(if_none_match), etag):
            self.counters.not_modified += 1
            kept = [pair for pair in reply.headers if pair[0] in _NOT_MODIFIED_KEEP]
            return Reply(304, [*kept, (b"x-cache", state)])
        return _tagged(reply, state)


def _freshness(cc: CacheControl, default_ttl: float | None, age: float) -> float | None:
    if cc.s_maxage is not None:
        return cc.s_maxage - age
    if cc.max_age is not None:
        return cc.max_age - age
    return None if default_ttl is None else default_ttl - age


def _tagged(reply: Reply, state: bytes) -> Reply:
    reply.headers.append((b"x-cache", state))
    return reply


def _header_values(exchange: Exchange, name: str) -> list[str]:
    return [value for key, value in exchange.head.forward if key == name]


def _pragma_no_cache(exchange: Exchange) -> bool:
    # RFC 9111 §5.4: Pragma counts only when the request has no Cache-Control.
    return not _header_values(exchange, "cache-control") and any(
        "no-cache" in value.lower() for value in _header_values(exchange, "pragma")
    )


def response_cache_stage(settings: Settings) -> ResponseCache | None:
    """The stage for `settings`; None (with a warning) when no Redis is configured, since
    without the purge channel a cache could serve a copy older than a committed write."""
    if settings.redis_url is None:
        log.warning("gateway cache is switched on but no Redis is configured: not caching")
        return None
    try:
        ttls = parse_route_ttls(settings.gateway_cache_ttls)
    except ValueError as exc:
        raise ConfigError(f"BOOKVAULT_GATEWAY_CACHE_TTLS: {exc}") from None
    choose = Compression().choose if settings.pattern_on("compression") else None
    redis = Redis.from_url(
        settings.redis_url, socket_timeout=_REDIS_TIMEOUT_S * 4, socket_connect_timeout=_REDIS_TIMEOUT_S * 4
    )
    return ResponseCache(
        ttls, redis=redis, max_entries=settings.gateway_cache_max_entries, choose_coding=choose
    )
