"""Rate-limit decisions per second, ours against peers, on one Redis, in one run.

    python -m bookvault.bench.limiter_bench [--redis-url URL] [--decisions N]
                                            [--concurrency C] [--keys K] [--rounds R]

Every contender limits the same traffic (N decisions, C at a time, over K
keys, each key allowed a burst of 200 refilling at 100/s or the windowed
equivalent, 200 per 2 s) against the same Redis, through redis-py with
hiredis, one after another, R rounds each; the table shows each contender's
median round:

- decisions/s: wall-clock throughput of the asyncio client;
- client µs: client CPU per decision (our process: Python, the protocol);
- redis µs: Redis server CPU per decision (INFO cpu);
- round trips: writes to Redis per decision, counted in redis-py, which all
  contenders use (a pipeline or a script call is one);
- cmds: Redis commands executed per decision (INFO commandstats), including
  those a script runs: the work the server does;
- allowed: the share of decisions admitted, so no contender wins by refusing
  more cheaply.

Peers: `limits` (moving window, sliding window counter, async Redis storage
on redis-py) and `throttled-py` (token bucket, GCRA). Without `--redis-url` a
throwaway redis-server is started on a free port and stopped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bookvault.bench.redis_bench import argument_parser, count_round_trips, run_on_redis, say
from bookvault.patterns.pipelined_redis import PipelinedRedis
from bookvault.patterns.ratelimit import (
    GCRA,
    Algorithm,
    FixedWindow,
    MemoryBackend,
    RateLimiter,
    RedisBackend,
    SlidingLog,
    SlidingWindow,
    TokenBucket,
)

__all__ = ["Result", "main", "run"]

RATE = 100  # tokens per second
BURST = 200  # the seed's token bucket; windowed algorithms get BURST per BURST / RATE seconds
WINDOW_S = BURST / RATE

Decide = Callable[[str], Awaitable[bool]]


@dataclasses.dataclass(frozen=True, slots=True)
class Contender:
    name: str
    library: str
    # (decide, close); built inside the running loop
    open: Callable[[str], Awaitable[tuple[Decide, Callable[[], Awaitable[None]]]]]


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    name: str
    library: str
    decisions_per_s: float
    client_us: float
    redis_us: float
    round_trips: float
    commands: float
    allowed: float


def _client(url: str) -> Redis:
    return Redis.from_url(url, retry=Retry(NoBackoff(), 0))


def _ours(
    algorithm: Algorithm, *, memory: bool = False, pipelined: bool = False
) -> Callable[[str], Awaitable[tuple[Decide, Any]]]:
    async def open_(url: str) -> tuple[Decide, Callable[[], Awaitable[None]]]:
        client: Redis | PipelinedRedis = PipelinedRedis.from_url(url) if pipelined else _client(url)
        if memory:
            limiter = RateLimiter("bench", algorithm, MemoryBackend())
        else:
            backend = RedisBackend(client, prefix="bench")
            await backend.load_scripts()
            limiter = RateLimiter("bench", algorithm, backend, timeout=None)

        async def decide(key: str) -> bool:
            return (await limiter.acquire(key)).allowed

        return decide, client.aclose

    return open_


def _limits(strategy: str) -> Callable[[str], Awaitable[tuple[Decide, Any]]]:
    async def open_(url: str) -> tuple[Decide, Callable[[], Awaitable[None]]]:
        from limits import RateLimitItemPerSecond
        from limits.aio import storage, strategies

        # Its default pool refuses past a few connections (MaxConnectionsError); others are unbounded.
        store = storage.RedisStorage(
            url.replace("redis://", "async+redis://", 1), implementation="redispy", max_connections=1024
        )
        kinds: dict[str, Any] = {
            "moving": strategies.MovingWindowRateLimiter,
            "sliding": strategies.SlidingWindowCounterRateLimiter,
        }
        limiter = kinds[strategy](store)
        item = RateLimitItemPerSecond(BURST, int(WINDOW_S))

        async def decide(key: str) -> bool:
            allowed: bool = await limiter.hit(item, "bench", key)
            return allowed

        async def close() -> None:
            with contextlib.suppress(Exception):
                await store.reset()

        return decide, close

    return open_


def _throttled(using: str) -> Callable[[str], Awaitable[tuple[Decide, Any]]]:
    async def open_(url: str) -> tuple[Decide, Callable[[], Awaitable[None]]]:
        from throttled.asyncio import RedisStore, Throttled, rate_limiter

        # Same pool bound as for `limits`: past its default, calls fail rather than wait.
        store = RedisStore(server=url, options={"CONNECTION_POOL_KWARGS": {"max_connections": 1024}})
        throttle = Throttled(using=using, quota=rate_limiter.per_sec(RATE, burst=BURST), store=store)

        async def decide(key: str) -> bool:
            result = await throttle.limit(key)
            return not result.limited

        async def close() -> None:
            return None

        return decide, close

    return open_


CONTENDERS: tuple[Contender, ...] = (
    Contender("token bucket", "bookvault", _ours(TokenBucket(RATE, BURST))),
    Contender(
        "token bucket, pipelined client (the gateway's)",
        "bookvault",
        _ours(TokenBucket(RATE, BURST), pipelined=True),
    ),
    Contender("GCRA", "bookvault", _ours(GCRA(RATE, 1.0, BURST))),
    Contender("sliding window counter", "bookvault", _ours(SlidingWindow(BURST, WINDOW_S))),
    Contender("fixed window", "bookvault", _ours(FixedWindow(BURST, WINDOW_S))),
    Contender("sliding log", "bookvault", _ours(SlidingLog(BURST, WINDOW_S))),
    Contender("moving window", "limits", _limits("moving")),
    Contender("sliding window counter", "limits", _limits("sliding")),
    Contender("token bucket", "throttled-py", _throttled("token_bucket")),
    Contender("GCRA", "throttled-py", _throttled("gcra")),
    Contender("token bucket, memory (no Redis)", "bookvault", _ours(TokenBucket(RATE, BURST), memory=True)),
)


async def _redis_costs(admin: Redis) -> tuple[float, int]:
    """Redis server CPU seconds so far, and commands served (less INFO itself)."""
    cpu = await admin.info("cpu")
    stats = await admin.info("commandstats")
    calls = sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), calls


async def _measure(
    contender: Contender, url: str, admin: Redis, decisions: int, concurrency: int, keys: list[str]
) -> Result:
    decide, close = await contender.open(url)
    try:
        # Warm, as concurrently as measured: every connection open, scripts cached.
        await asyncio.gather(*(decide(f"warm-{i}") for i in range(4 * concurrency)))
        rng = random.Random(7)
        order = [rng.choice(keys) for _ in range(decisions)]
        queue: Iterator[str] = iter(order)
        allowed = 0

        async def worker() -> None:
            nonlocal allowed
            for key in queue:
                ok = await decide(key)
                allowed += ok

        await admin.config_resetstat()
        redis_cpu0, _ = await _redis_costs(admin)
        with count_round_trips() as trips:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        redis_cpu1, commands = await _redis_costs(admin)
    finally:
        await close()
    return Result(
        contender.name,
        contender.library,
        decisions / wall,
        cpu / decisions * 1e6,
        (redis_cpu1 - redis_cpu0) / decisions * 1e6,
        trips[0] / decisions,
        commands / decisions,
        allowed / decisions,
    )


async def run(
    url: str, *, decisions: int, concurrency: int, keys: int, rounds: int, say: Callable[[str], None]
) -> list[Result]:
    """Every contender, `rounds` times round-robin; each one's median round by decisions/s."""
    names = [f"k{i}" for i in range(keys)]
    admin = _client(url)
    by_contender: dict[int, list[Result]] = {i: [] for i in range(len(CONTENDERS))}
    try:
        for round_no in range(rounds):
            for i, contender in enumerate(CONTENDERS):
                await admin.flushdb()
                result = await _measure(contender, url, admin, decisions, concurrency, names)
                by_contender[i].append(result)
                rate = f"{result.decisions_per_s:,.0f}/s"
                say(f"round {round_no + 1}: {contender.library} {contender.name}: {rate}")
    finally:
        await admin.flushdb()
        await admin.aclose()
    medians = []
    for results in by_contender.values():
        ranked = sorted(results, key=lambda r: r.decisions_per_s)
        medians.append(ranked[len(ranked) // 2])
    return medians


def table(results: list[Result]) -> str:
    reference = next(r for r in results if r.library == "bookvault" and r.name == "token bucket")
    lines = [
        "| library | algorithm | decisions/s | vs ours (token bucket) | client µs/decision | "
        "redis µs/decision | round trips/decision | redis cmds/decision | allowed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.library} | {r.name} | {r.decisions_per_s:,.0f} | "
            f"{r.decisions_per_s / reference.decisions_per_s:.2f}x | {r.client_us:.1f} | {r.redis_us:.1f} | "
            f"{r.round_trips:.2f} | {r.commands:.2f} | {r.allowed:.1%} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("bookvault.bench.limiter_bench", __doc__)
    parser.add_argument("--decisions", type=int, default=10_000, help="decisions per contender and round")
    parser.add_argument("--concurrency", type=int, default=32, help="decisions in flight at once")
    parser.add_argument("--keys", type=int, default=1_000, help="distinct clients the traffic is spread over")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per contender; the median is shown")
    args = parser.parse_args(argv)

    results = run_on_redis(
        args.redis_url,
        lambda url: run(
            url,
            decisions=args.decisions,
            concurrency=args.concurrency,
            keys=args.keys,
            rounds=args.rounds,
            say=say,
        ),
    )
    print(
        f"{args.decisions} decisions per contender, {args.concurrency} in flight, {args.keys} keys, "
        f"median of {args.rounds} rounds; burst {BURST}, {RATE}/s (windows: {BURST} per {WINDOW_S:g} s)\n"
    )
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
