"""A second process holding its own cache over the same Redis, driven by the tests.

    python peer.py <redis_url> <prefix> <namespace>

Reads one JSON command per line on stdin, answers one JSON line on stdout:

    {"op": "get", "key": k}                 get_or_load, loading from the "database"
    {"op": "stampede", "key": k, "n": 1000, "load_seconds": 0.3}
    {"op": "write", "key": k, "title": t}   write-behind enqueue, then stay alive
    {"op": "flush"}                         consume a batch with an apply that never returns

The "database" is a Redis hash `<prefix>:db` (key -> title); every load adds one to
`<prefix>:loads`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any

import msgspec
from redis.asyncio import Redis

from bookvault.patterns.cache import (
    Cache,
    CachePolicy,
    LocalPolicy,
    PendingWrite,
    RedisBackend,
    WriteBehindFlusher,
    WriteBehindQueue,
)


class Book(msgspec.Struct, frozen=True):
    key: str
    title: str


def answer(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def main(url: str, prefix: str, namespace: str) -> None:
    client = Redis.from_url(url)
    backend = RedisBackend(client, prefix=prefix, health_interval=1.0)
    cache = Cache(
        namespace,
        Book,
        backend,
        policy=CachePolicy(ttl=300, lease_wait=10.0),
        local=LocalPolicy(maxsize=1000, ttl=60),
    )
    await cache.start()
    loads = 0
    load_seconds = 0.0

    def loader(key: str) -> Callable[[], Awaitable[Book | None]]:
        async def load() -> Book | None:
            nonlocal loads
            loads += 1
            await client.incr(f"{prefix}:loads")
            title = await client.hget(f"{prefix}:db", key)
            if load_seconds:
                await asyncio.sleep(load_seconds)
            return None if title is None else Book(key, title.decode() if isinstance(title, bytes) else title)

        return load

    answer({"ready": True})
    while line := await asyncio.to_thread(sys.stdin.readline):
        command = json.loads(line)
        op = command["op"]
        if op == "get":
            book = await cache.get_or_load(command["key"], loader(command["key"]))
            answer(
                {
                    "title": None if book is None else book.title,
                    "loads": loads,
                    "stats": asdict(cache.stats()),
                }
            )
        elif op == "stampede":
            load_seconds = command["load_seconds"]
            key = command["key"]
            books = await asyncio.gather(*(cache.get_or_load(key, loader(key)) for _ in range(command["n"])))
            titles = sorted({b.title if b else "" for b in books})
            answer({"titles": titles, "loads": loads, "stats": asdict(cache.stats())})
        elif op == "write":
            queue = WriteBehindQueue(cache)
            write_id = await queue.write(command["key"], Book(command["key"], command["title"]))
            answer({"acked": write_id})
        elif op == "flush":

            async def apply_forever(batch: Sequence[PendingWrite[Book]]) -> None:
                answer({"applying": [w.id for w in batch]})
                await asyncio.Event().wait()  # dies here, mid-apply

            flusher = WriteBehindFlusher(cache, apply_forever, consumer="doomed", claim_idle=0.2)
            await flusher.flush_once(block=5.0)
    await cache.aclose()
    await backend.aclose()
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
