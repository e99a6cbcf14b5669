"""One pub/sub connection serves every cache of a process: namespaces stay apart, and
caches can come and go while it runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgspec
import pytest
from redis.asyncio import Redis

from bookvault.patterns.cache import Cache, LocalPolicy, RedisBackend

pytestmark = pytest.mark.stack


class Row(msgspec.Struct, frozen=True):
    value: str


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within}s")
        await asyncio.sleep(0.005)


async def test_caches_sharing_a_backend_hear_only_their_own_namespace(redis: Redis, prefix: str) -> None:
    backend = RedisBackend(redis, prefix=prefix)
    here = {name: Cache(name, Row, backend, local=LocalPolicy()) for name in ("books", "members")}
    there = {name: Cache(name, Row, backend, local=LocalPolicy()) for name in ("books", "members")}
    for cache in [*here.values(), *there.values()]:
        await cache.start()
        assert cache.local_live

    async def load() -> Row | None:
        return Row("v")

    for cache in there.values():
        await cache.get_or_load("1", load)
    await here["books"].invalidate("1")
    await eventually(lambda: there["books"].stats().local_size == 0)
    await asyncio.sleep(0.05)
    assert there["members"].stats().local_size == 1
    assert there["members"].stats().invalidations_received == 0

    await there["books"].aclose()  # one cache leaves; the others keep listening
    await there["members"].get_or_load("2", load)
    await here["members"].invalidate("2")
    await eventually(lambda: there["members"].stats().invalidations_received == 1)

    for cache in [*here.values(), there["members"]]:
        await cache.aclose()
    await backend.aclose()
