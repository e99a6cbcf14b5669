import asyncio

import pytest

from bookvault.patterns.coalesce import SingleFlight


async def test_concurrent_callers_share_one_computation() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    started = 0
    release = asyncio.Event()

    async def load() -> int:
        nonlocal started
        started += 1
        await release.wait()
        return 42

    callers = [asyncio.create_task(flights.run("book:1", load)) for _ in range(1000)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*callers) == [42] * 1000
    assert started == 1
    assert flights.calls == 1
    assert flights.shared == 999
    assert not flights.in_flight("book:1")


async def test_different_keys_do_not_share() -> None:
    flights: SingleFlight[int, int] = SingleFlight()

    async def load(n: int) -> int:
        await asyncio.sleep(0)
        return n * 10

    results = await asyncio.gather(*(flights.run(n, lambda n=n: load(n)) for n in range(5)))  # type: ignore[misc]
    assert results == [0, 10, 20, 30, 40]
    assert flights.calls == 5


async def test_failure_reaches_every_waiter_and_the_next_call_retries() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    release = asyncio.Event()

    async def broken() -> int:
        await release.wait()
        raise ConnectionError("database went away")

    callers = [asyncio.create_task(flights.run("k", broken)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    outcomes = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)

    async def healthy() -> int:
        return 7

    assert await flights.run("k", healthy) == 7


async def test_cancelled_leader_does_not_fail_the_followers() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    release = asyncio.Event()

    async def load() -> str:
        await release.wait()
        return "value"

    leader = asyncio.create_task(flights.run("k", load))
    await asyncio.sleep(0)
    follower = asyncio.create_task(flights.run("k", load))
    await asyncio.sleep(0)
    leader.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await follower == "value"
    with pytest.raises(asyncio.CancelledError):
        await leader
