"""One table of backend behaviour, run against the memory backend and real Redis:
the Redis scripts must mean exactly what the reference implementation means."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bookvault.patterns.cache import CacheBackend, MemoryBackend, RedisBackend
from bookvault.patterns.pipelined_redis import PipelinedRedis

pytestmark = pytest.mark.stack


class Heard:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.live = False

    def invalidated(self, key: str) -> None:
        self.keys.append(key)

    def reset(self, *, live: bool) -> None:
        self.live = live


@pytest.fixture(params=["memory", "redis", "redis with a pipelined client"])
async def backend(
    request: pytest.FixtureRequest, redis: Redis, redis_url: str, prefix: str
) -> AsyncIterator[CacheBackend]:
    pipelined = PipelinedRedis.from_url(redis_url) if request.param.endswith("pipelined client") else None
    backend: CacheBackend = (
        MemoryBackend()
        if request.param == "memory"
        else RedisBackend(redis, prefix=prefix, commands=pipelined)
    )
    yield backend
    await backend.aclose()
    if pipelined is not None:
        await pipelined.aclose()


async def test_the_pipelined_client_reloads_scripts_a_flushed_redis_forgot(
    redis: Redis, redis_url: str, prefix: str
) -> None:
    pipelined = PipelinedRedis.from_url(redis_url)
    backend = RedisBackend(redis, prefix=prefix, commands=pipelined)
    try:
        await redis.script_flush()
        claim = await backend.claim("ns", "k", version="v1", lease="a", lease_ttl=5)
        assert (claim.value, claim.version, claim.leased) == (None, "v1", True)
        assert await backend.fill("ns", "k", b"entry", 60, version="v1", lease="a")
        assert await backend.get("ns", "k") == b"entry"
    finally:
        await backend.aclose()
        await pipelined.aclose()


async def test_claim_creates_a_version_once_and_hands_the_lease_to_one_caller(backend: CacheBackend) -> None:
    first = await backend.claim("ns", "k", version="v1", lease="a", lease_ttl=5)
    second = await backend.claim("ns", "k", version="v2", lease="b", lease_ttl=5)
    assert (first.value, first.version, first.leased) == (None, "v1", True)
    assert (second.value, second.version, second.leased) == (None, "v1", False)


async def test_a_claim_after_a_fill_returns_the_value(backend: CacheBackend) -> None:
    claim = await backend.claim("ns", "k", version="v1", lease="a", lease_ttl=5)
    assert await backend.fill("ns", "k", b"row", 60, version=claim.version, lease="a")
    again = await backend.claim("ns", "k", version="v2", lease="b", lease_ttl=5)
    assert again.value == b"row"
    assert await backend.get("ns", "k") == b"row"


async def test_a_fill_lands_only_under_the_version_it_read(backend: CacheBackend) -> None:
    claim = await backend.claim("ns", "k", version="v1", lease="a", lease_ttl=5)
    await backend.invalidate("ns", "k", version="v2")
    assert not await backend.fill("ns", "k", b"old", 60, version=claim.version, lease="a")
    assert await backend.get("ns", "k") is None
    assert await backend.try_lease("ns", "k", lease="c", lease_ttl=5)  # the refused fill released it
    assert await backend.fill("ns", "k", b"new", 60, version="v2", lease="c")
    assert await backend.get("ns", "k") == b"new"


async def test_only_the_holder_releases_a_lease(backend: CacheBackend) -> None:
    assert await backend.try_lease("ns", "k", lease="a", lease_ttl=5)
    await backend.release("ns", "k", lease="b")
    assert not await backend.try_lease("ns", "k", lease="c", lease_ttl=5)
    await backend.release("ns", "k", lease="a")
    assert await backend.try_lease("ns", "k", lease="c", lease_ttl=5)


async def test_write_through_replaces_the_value_and_the_version(backend: CacheBackend) -> None:
    claim = await backend.claim("ns", "k", version="v1", lease="a", lease_ttl=5)
    await backend.write("ns", "k", b"committed", 60, version="v2")
    assert not await backend.fill("ns", "k", b"loaded-before", 60, version=claim.version, lease="a")
    assert await backend.get("ns", "k") == b"committed"


async def test_staged_writes_block_fills_until_settled(backend: CacheBackend) -> None:
    assert await backend.stage("ns", "k", b"queued", 60, version="v2", write_id="100-0")
    await backend.invalidate("ns", "k", version="v3")
    assert not await backend.fill("ns", "k", b"db-behind", 60, version="v3", lease=None)
    await backend.settle("ns", "k", version="v4", write_id="100-0")
    assert await backend.fill("ns", "k", b"db-caught-up", 60, version="v3", lease=None)


async def test_staging_respects_write_order(backend: CacheBackend) -> None:
    assert await backend.stage("ns", "k", b"second", 60, version="v2", write_id="100-1")
    assert not await backend.stage("ns", "k", b"first", 60, version="v3", write_id="100-0")
    assert await backend.get("ns", "k") == b"second"
    await backend.settle("ns", "k", version="v4", write_id="100-0")
    assert await backend.get("ns", "k") == b"second"


async def test_settling_a_write_the_cache_never_saw_invalidates(backend: CacheBackend) -> None:
    await backend.write("ns", "k", b"before", 60, version="v1")
    await backend.settle("ns", "k", version="v2", write_id="100-0")
    assert await backend.get("ns", "k") is None


async def test_invalidations_reach_subscribers(backend: CacheBackend) -> None:
    heard = Heard()
    subscription = await backend.subscribe("ns", heard)
    for _ in range(500):
        if heard.live:
            break
        await _tick()
    assert heard.live
    await backend.invalidate("ns", "k1", version="v1")
    await backend.write("ns", "k2", b"x", 60, version="v2")
    for _ in range(500):
        if len(heard.keys) == 2:
            break
        await _tick()
    assert heard.keys == ["k1", "k2"]
    await subscription.aclose()


async def _tick() -> None:
    await asyncio.sleep(0.005)
