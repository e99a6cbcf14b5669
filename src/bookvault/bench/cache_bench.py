"""What a cache hit costs, ours against peers, on one Redis, in one run.

    python -m bookvault.bench.cache_bench [--redis-url URL] [--hits N] [--keys K]
                                          [--concurrency C] [--rounds R]

Every contender first stores the same K values (a book as the catalog returns it, a
dict of ten fields) and then answers N reads of them, keys drawn at random, all hits;
R rounds each, round-robin, each column's median over the rounds shown:

- µs/hit: wall time per read, one read at a time (for L2, one Redis round trip each);
- client CPU µs/hit: this process's CPU per read (Python, decoding, the protocol);
- hits/s at C: throughput with C reads in flight;
- round trips/hit: writes to Redis per read, counted in redis-py, which every
  contender uses (0 means answered from memory).

Tiers:
- L1, in-process memory in front of Redis: ours (`Cache` with a `LocalPolicy`, kept
  coherent by pub/sub invalidation) and cashews' client-side cache (kept coherent by
  Redis client tracking); for reference, plain memory caches (cashews `mem://`,
  aiocache `SimpleMemoryCache`), which nothing keeps coherent across processes.
- L2, Redis only: ours (`Cache` without a local tier: one GET, msgpack into the
  declared type, plus the XFetch draw), cashews `redis://` (pickle) and aiocache
  `RedisCache` (its default JSON serializer).

Every read's value is checked against what was stored, and our loader is counted: a
contender that missed would be reported, not timed. Without `--redis-url` a
throwaway redis-server is started on a free port and stopped at the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis

from bookvault.bench.redis_bench import argument_parser, count_round_trips, run_on_redis, say
from bookvault.patterns.cache import Cache, CachePolicy, LocalPolicy, RedisBackend

__all__ = ["Result", "main", "run"]

Get = Callable[[str], Awaitable[Any]]
Close = Callable[[], Awaitable[None]]
Opener = Callable[[str, dict[str, dict[str, Any]]], Awaitable[tuple[Get, Close]]]


@dataclasses.dataclass(frozen=True, slots=True)
class Contender:
    tier: str
    library: str
    how: str
    # Stores the values and returns (get, close); built inside the running loop.
    open: Opener


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    tier: str
    library: str
    how: str
    wall_us: float
    client_us: float
    hits_per_s: float
    round_trips: float


def _book(book_id: int) -> dict[str, Any]:
    return {
        "id": book_id,
        "isbn": f"978{book_id:010d}",
        "title": f"A Cached Harbour, volume {book_id}",
        "author": "Ada Reed",
        "genre": "Mystery",
        "published_year": 2001,
        "total_copies": 3,
        "available_copies": 2,
        "rating": 4.25,
        "updated_at": "2026-11-21T20:00:00Z",
    }


class _LoaderCalls:
    """Our loader, counting calls: on a hit it must never run."""

    def __init__(self) -> None:
        self.calls = 0


def _ours(*, local: bool) -> Opener:
    async def open_(url: str, values: dict[str, dict[str, Any]]) -> tuple[Get, Close]:
        client, listener = Redis.from_url(url), Redis.from_url(url)
        backend = RedisBackend(client, prefix="bench", pubsub_client=listener)
        cache: Cache[dict[str, Any]] = Cache(
            "bench.l1" if local else "bench.l2",
            dict,
            backend,
            policy=CachePolicy(ttl=3600.0),
            local=LocalPolicy(maxsize=2 * len(values), ttl=3600.0) if local else None,
        )
        await cache.start()
        loader = _LoaderCalls()

        def load_for(key: str) -> Callable[[], Awaitable[dict[str, Any] | None]]:
            async def load() -> dict[str, Any] | None:
                loader.calls += 1
                return values[key]

            return load

        loaders = {key: load_for(key) for key in values}
        for key in values:
            await cache.get_or_load(key, loaders[key])
        filled = loader.calls

        async def get(key: str) -> Any:
            return await cache.get_or_load(key, loaders[key])

        async def close() -> None:
            await cache.aclose()
            await backend.aclose()
            await client.aclose()
            await listener.aclose()
            if loader.calls != filled:
                raise RuntimeError(
                    f"ours ({'L1' if local else 'L2'}) loaded on {loader.calls - filled} reads"
                )

        return get, close

    return open_


def _cashews(setting: str) -> Opener:
    async def open_(url: str, values: dict[str, dict[str, Any]]) -> tuple[Get, Close]:
        from cashews import Cache as Cashews

        cache = Cashews()
        if setting == "mem":
            cache.setup("mem://", size=2 * len(values))
        else:
            cache.setup(url, client_side=setting == "client_side")
        await cache.init()
        for key, value in values.items():
            await cache.set(key, value, expire=3600)
        for key in values:  # client-side: the first read fills the local tier
            await cache.get(key)

        async def get(key: str) -> Any:
            return await cache.get(key)

        async def close() -> None:
            await cache.clear()
            await cache.close()

        return get, close

    return open_


def _aiocache(setting: str) -> Opener:
    async def open_(url: str, values: dict[str, dict[str, Any]]) -> tuple[Get, Close]:
        from aiocache import RedisCache, SimpleMemoryCache  # type: ignore[import-untyped]  # no stubs published

        cache: Any
        if setting == "memory":
            cache = SimpleMemoryCache()
        else:
            parts = urlsplit(url)
            cache = RedisCache(
                endpoint=parts.hostname or "127.0.0.1", port=parts.port or 6379, namespace="bench"
            )
        for key, value in values.items():
            await cache.set(key, value, ttl=3600)

        async def get(key: str) -> Any:
            return await cache.get(key)

        async def close() -> None:
            await cache.clear()
            await cache.close()

        return get, close

    return open_


CONTENDERS: tuple[Contender, ...] = (
    Contender("L1", "bookvault", "Cache + LocalPolicy (pub/sub invalidation)", _ours(local=True)),
    Contender("L1", "cashews", "client_side=True (client tracking)", _cashews("client_side")),
    Contender("L1", "cashews", "mem:// (memory only, no coherence)", _cashews("mem")),
    Contender("L1", "aiocache", "SimpleMemoryCache (memory only, no coherence)", _aiocache("memory")),
    Contender("L2", "bookvault", "Cache, no local tier (msgpack)", _ours(local=False)),
    Contender("L2", "cashews", "redis:// (pickle)", _cashews("redis")),
    Contender("L2", "aiocache", "RedisCache (JSON)", _aiocache("redis")),
)


async def _measure(
    contender: Contender, url: str, values: dict[str, dict[str, Any]], hits: int, concurrency: int
) -> Result:
    get, close = await contender.open(url, values)
    try:
        rng = random.Random(11)
        keys = list(values)
        order = [rng.choice(keys) for _ in range(hits)]
        for key in order[:200]:  # every contender answers with what was stored
            if await get(key) != values[key]:
                raise RuntimeError(f"{contender.library} ({contender.how}) answered a wrong value")
        with count_round_trips() as trips:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for key in order:
                await get(key)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        queue = iter(order)

        async def worker() -> None:
            for key in queue:
                await get(key)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        concurrent = time.perf_counter() - started
    finally:
        await close()
    return Result(
        contender.tier,
        contender.library,
        contender.how,
        wall / hits * 1e6,
        cpu / hits * 1e6,
        hits / concurrent,
        trips[0] / hits,
    )


async def run(
    url: str, *, hits: int, keys: int, concurrency: int, rounds: int, say: Callable[[str], None]
) -> list[Result]:
    """Every contender, `rounds` times round-robin; each column's median per contender."""
    values = {f"book:{i}": _book(i) for i in range(keys)}
    admin = Redis.from_url(url)
    by_contender: dict[int, list[Result]] = {i: [] for i in range(len(CONTENDERS))}
    try:
        for round_no in range(rounds):
            for i, contender in enumerate(CONTENDERS):
                await admin.flushdb()
                result = await _measure(contender, url, values, hits, concurrency)
                by_contender[i].append(result)
                say(f"round {round_no + 1}: {contender.library} {contender.how}: {result.wall_us:.1f} µs/hit")
    finally:
        await admin.flushdb()
        await admin.aclose()
    return [_median(results) for results in by_contender.values()]


def _median(results: list[Result]) -> Result:
    """Each column's median over the rounds, taken on its own: one preempted round on a
    busy machine then moves no column."""

    def mid(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    first = results[0]
    return Result(
        first.tier,
        first.library,
        first.how,
        mid([r.wall_us for r in results]),
        mid([r.client_us for r in results]),
        mid([r.hits_per_s for r in results]),
        mid([r.round_trips for r in results]),
    )


def table(results: list[Result]) -> str:
    ours = {r.tier: r for r in results if r.library == "bookvault"}
    lines = [
        "| tier | library | how | µs/hit | vs ours | client CPU µs/hit | hits/s at C | round trips/hit |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.tier} | {r.library} | {r.how} | {r.wall_us:.1f} | "
            f"{r.wall_us / ours[r.tier].wall_us:.2f}x | {r.client_us:.1f} | {r.hits_per_s:,.0f} | "
            f"{r.round_trips:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("bookvault.bench.cache_bench", __doc__)
    parser.add_argument("--hits", type=int, default=20_000, help="reads per contender and round")
    parser.add_argument("--keys", type=int, default=1_000, help="distinct keys the reads are spread over")
    parser.add_argument("--concurrency", type=int, default=32, help="reads in flight for the hits/s column")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per contender; medians are shown")
    args = parser.parse_args(argv)

    results = run_on_redis(
        args.redis_url,
        lambda url: run(
            url, hits=args.hits, keys=args.keys, concurrency=args.concurrency, rounds=args.rounds, say=say
        ),
    )
    print(
        f"{args.hits} hits per contender over {args.keys} keys (a 10-field book each), "
        f"median of {args.rounds} rounds; hits/s with C={args.concurrency} in flight\n"
    )
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
