"""The task-free single-flight used for shared-tier reads."""

from __future__ import annotations

import asyncio

import pytest

from bookvault.patterns.cache.inline_flight import InlineFlight


async def test_concurrent_callers_share_one_computation() -> None:
    flights: InlineFlight[str, int] = InlineFlight()
    release = asyncio.Event()
    runs = 0

    async def compute() -> int:
        nonlocal runs
        runs += 1
        await release.wait()
        return 42

    callers = [asyncio.create_task(flights.run("k", compute)) for _ in range(1000)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*callers) == [42] * 1000
    assert runs == 1
    assert flights.shared == 999


async def test_a_failure_reaches_every_waiting_caller() -> None:
    flights: InlineFlight[str, int] = InlineFlight()
    release = asyncio.Event()

    async def compute() -> int:
        await release.wait()
        raise LookupError("gone")

    callers = [asyncio.create_task(flights.run("k", compute)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, LookupError) for r in results)


async def test_a_cancelled_leader_hands_over_instead_of_failing_its_waiters() -> None:
    flights: InlineFlight[str, int] = InlineFlight()
    runs = 0
    release = asyncio.Event()

    async def compute() -> int:
        nonlocal runs
        runs += 1
        await release.wait()
        return runs

    leader = asyncio.create_task(flights.run("k", compute))
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(flights.run("k", compute)) for _ in range(5)]
    await asyncio.sleep(0)
    leader.cancel()
    for _ in range(5):  # the waiters wake, and one of them leads
        await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiters) == [2] * 5  # one waiter led the second run
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_a_cancelled_waiter_does_not_disturb_the_others() -> None:
    flights: InlineFlight[str, int] = InlineFlight()
    release = asyncio.Event()

    async def compute() -> int:
        await release.wait()
        return 7

    leader = asyncio.create_task(flights.run("k", compute))
    await asyncio.sleep(0)
    quitter = asyncio.create_task(flights.run("k", compute))
    stayer = asyncio.create_task(flights.run("k", compute))
    await asyncio.sleep(0)
    quitter.cancel()
    release.set()
    assert await leader == 7
    assert await stayer == 7
