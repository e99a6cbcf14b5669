"""The Redis fast path for replays, on real Redis: what goes in comes out byte for
byte, per scope, expiring with its key; an unreachable Redis is only a miss."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from tests.support.redis_server import redis_client

from bookvault.config import Settings
from bookvault.patterns.idempotency import RedisReplayCache, Scope, StoredKey, StoredResponse

pytestmark = pytest.mark.stack


@pytest.fixture
async def redis(infra: Settings) -> AsyncIterator[Any]:
    async with redis_client(infra) as client:
        yield client


def _scope(principal: str = "member:7") -> Scope:
    return Scope(principal, "POST", "/api/accounts/v1/members/7/payments", f"key-{uuid.uuid4()}")


_STORED = StoredKey(
    "f" * 64,
    StoredResponse(201, (("content-type", "application/json"), ("x-a", "1")), b'{"id":1,"amount":\xff}'),
)


async def test_a_cached_outcome_comes_back_byte_for_byte_for_its_scope_only(redis: Any) -> None:
    cache = RedisReplayCache(redis, prefix=f"test-{uuid.uuid4().hex[:6]}:")
    scope = _scope()
    assert await cache.get(scope) is None
    await cache.put(scope, _STORED, timedelta(hours=24))
    assert await cache.get(scope) == _STORED
    # Another principal's identical key is another request: never this outcome.
    assert await cache.get(Scope("admin:1", scope.method, scope.path, scope.key)) is None


async def test_an_entry_lives_no_longer_than_its_key(redis: Any) -> None:
    cache = RedisReplayCache(redis, prefix=f"test-{uuid.uuid4().hex[:6]}:")
    scope = _scope()
    await cache.put(scope, _STORED, timedelta(seconds=90))
    assert 0 < await redis.pttl(cache.key(scope)) <= 90_000
    expired = _scope()
    await cache.put(expired, _STORED, timedelta(0))  # a key with no time left is not cached
    assert await cache.get(expired) is None


async def test_an_unreachable_redis_is_a_miss_not_an_error() -> None:
    dead = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        cache = RedisReplayCache(dead)
        await cache.put(_scope(), _STORED, timedelta(hours=1))
        assert await cache.get(_scope()) is None
    finally:
        await dead.aclose()
