from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg
import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.patterns.db import LeakGuard, MemoryWritePositions, format_lsn, parse_lsn


@pytest.mark.parametrize("text", ["0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF"])
def test_lsn_round_trip(text: str) -> None:
    assert format_lsn(parse_lsn(text)) == text


def test_lsn_order_follows_the_wal() -> None:
    assert parse_lsn("1/0") > parse_lsn("0/FFFFFFFF")
    with pytest.raises(ValueError, match="not a WAL position"):
        parse_lsn("12345")


async def test_positions_only_move_forward_and_expire() -> None:
    clock = FakeClock()
    positions = MemoryWritePositions(ttl_s=30, clock=clock)
    await positions.remember("7", 500)
    await positions.remember("7", 300)
    assert await positions.get("7") == 500
    assert await positions.get("8") is None
    clock.advance(31)
    assert await positions.get("7") is None


class _FakePool:
    """Just enough of a pool to hand out a connection."""

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[object]:
        yield object()


async def test_a_connection_held_too_long_is_reported_once_with_its_origin() -> None:
    clock = FakeClock()
    guard = LeakGuard(cast(asyncpg.Pool, _FakePool()), threshold_s=2.0, clock=clock)

    async def forgetful_handler() -> list[Any]:
        async with guard.acquire():
            clock.advance(1.0)
            assert guard.check() == []
            clock.advance(1.5)
            first = guard.check()
            assert guard.check() == []  # reported once, not on every check
            return first

    reports = await forgetful_handler()
    assert len(reports) == 1
    assert reports[0].held_for_s == pytest.approx(2.5)
    assert "forgetful_handler" in reports[0].taken_at
    assert guard.held == 0
    assert guard.leaks_reported == 1


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        LeakGuard(cast(asyncpg.Pool, _FakePool()), threshold_s=0)


def test_a_pool_reporting_to_the_guard_gets_the_same_detection() -> None:
    clock = FakeClock()
    guard = LeakGuard(threshold_s=5.0, clock=clock)

    def checkout_in_a_handler() -> None:
        guard.taken("conn-1")

    checkout_in_a_handler()
    guard.taken("conn-2")
    clock.advance(3)
    guard.returned("conn-2")
    guard.returned("never-taken")  # ignored
    assert guard.overdue() == 0
    clock.advance(3)
    assert guard.overdue() == 1
    reports = guard.check()
    assert len(reports) == 1
    assert "checkout_in_a_handler" in reports[0].taken_at
    assert 'guard.taken("conn-1")' in reports[0].taken_at  # the source line, looked up when reported
    guard.returned("conn-1")
    assert (guard.held, guard.overdue(), guard.leaks_reported) == (0, 0, 1)


async def test_a_guard_without_a_pool_cannot_acquire() -> None:
    guard = LeakGuard(threshold_s=1.0)
    with pytest.raises(RuntimeError, match="acquire from that pool"):
        async with guard.acquire():
            pass
