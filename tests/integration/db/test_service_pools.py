"""Service pools (`db.pool.open_pool`) on the session's PostgreSQL: HikariCP's
acquire timeout, max lifetime and leak detection, and their metrics.

Ages are measured with a fake clock the test moves; `maintain()` is the pool's
background round, called directly instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from bookvault.config import Settings
from bookvault.db.pool import PoolOptions, ServicePool, open_pool, register_pools
from bookvault.patterns.clock import FakeClock

pytestmark = pytest.mark.stack


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=[True, False], ids=["tuned", "default"])
async def pool(
    infra: Settings, clock: FakeClock, request: pytest.FixtureRequest
) -> AsyncIterator[ServicePool]:
    pool = await open_pool(
        infra.service_database_url("catalog"),
        min_size=1,
        max_size=1,
        name="pool-test",
        tuned=request.param,
        options=PoolOptions(acquire_timeout_s=0.2, max_lifetime_s=1800.0, leak_detection_s=60.0),
        clock=clock,
    )
    try:
        yield pool
    finally:
        await pool.close()


def _metrics(pool: ServicePool) -> str:
    registry = CollectorRegistry()
    register_pools(registry, {"catalog": pool})
    return generate_latest(registry).decode()


async def _held_too_long_somewhere(pool: ServicePool, clock: FakeClock) -> None:
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT 1") == 1
        clock.advance(61)
        await pool.maintain()
        assert 'bookvault_db_pool_held_too_long{pool="catalog"} 1.0' in _metrics(pool)


async def test_a_connection_held_past_the_threshold_is_logged_with_where_it_was_taken(
    pool: ServicePool, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bookvault.patterns.db.leaks"):
        await _held_too_long_somewhere(pool, clock)

    leaks = [record.getMessage() for record in caplog.records if "possible connection leak" in record.message]
    assert len(leaks) == 1
    assert "connection held for 61.0 s" in leaks[0]
    assert "_held_too_long_somewhere" in leaks[0]  # the code that took it, not the pool's
    assert "async with pool.acquire() as conn" in leaks[0]
    metrics = _metrics(pool)
    assert 'bookvault_db_pool_leaks_total{pool="catalog"} 1.0' in metrics
    assert 'bookvault_db_pool_held_too_long{pool="catalog"} 0.0' in metrics  # given back since


async def test_a_connection_given_back_in_time_is_never_reported(
    pool: ServicePool, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bookvault.patterns.db.leaks"):
        for _ in range(3):
            assert await pool.fetchval("SELECT 1") == 1  # the pool's own acquire and release
            clock.advance(59)
            await pool.maintain()
    assert not [record for record in caplog.records if "possible connection leak" in record.message]
    assert 'bookvault_db_pool_leaks_total{pool="catalog"} 0.0' in _metrics(pool)


async def test_waiting_for_a_connection_ends_at_the_acquire_timeout(pool: ServicePool) -> None:
    async with pool.acquire():
        with pytest.raises(TimeoutError):
            await pool.fetchval("SELECT 1")  # the only connection is taken
    assert await pool.fetchval("SELECT 1") == 1


async def test_connections_are_replaced_once_past_their_max_lifetime(
    pool: ServicePool, clock: FakeClock
) -> None:
    first = await pool.fetchval("SELECT pg_backend_pid()")
    clock.advance(1000)
    await pool.maintain()
    assert await pool.fetchval("SELECT pg_backend_pid()") == first

    clock.advance(1000)  # 2000 s since the pool opened: past the 1800 s lifetime
    await pool.maintain()
    assert await pool.fetchval("SELECT pg_backend_pid()") != first


async def test_pool_usage_is_on_the_metrics(pool: ServicePool) -> None:
    async with pool.acquire():
        metrics = _metrics(pool)
    assert 'bookvault_db_pool_in_use{pool="catalog"} 1.0' in metrics
    assert 'bookvault_db_pool_max_size{pool="catalog"} 1.0' in metrics


def test_the_named_defaults_are_the_seeds_tuned_hikari_settings() -> None:
    options = PoolOptions.from_settings(Settings())
    assert options == PoolOptions(
        acquire_timeout_s=20.0, idle_timeout_s=600.0, max_lifetime_s=1800.0, leak_detection_s=60.0
    )


async def test_leak_detection_can_be_turned_off(infra: Settings) -> None:
    pool = await open_pool(
        infra.service_database_url("catalog"),
        min_size=1,
        max_size=1,
        name="pool-test",
        tuned=True,
        options=PoolOptions(leak_detection_s=0),
    )
    try:
        assert pool.leaks is None
        assert await asyncio.wait_for(pool.fetchval("SELECT 1"), 5) == 1
    finally:
        await pool.close()
