"""Fixtures for the rate limiter against real Redis.

redis_url       the session stack's Redis (tests/conftest.py `infra`)
redis_client    a client on it without hidden retries, closed after the test
prefix          a key prefix unique to the test, so runs never share state
own_redis       a throwaway redis-server of this test's own, to stop, pause or flush
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from tests.support.redis_server import OwnRedis, running_redis

from bookvault.config import Settings


def connect(url: str) -> Redis:
    # No retries inside redis-py: the limiter bounds each call and decides itself.
    return Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1)


@pytest.fixture(scope="session")
def redis_url(infra: Settings) -> str:
    if infra.redis_url is None:
        pytest.fail("the test stack started no Redis")
    return infra.redis_url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = connect(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"rltest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    with running_redis() as server:
        yield server
