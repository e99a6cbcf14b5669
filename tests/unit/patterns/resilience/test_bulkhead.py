import asyncio
from typing import Any

import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.patterns.resilience import (
    Bulkhead,
    BulkheadConfig,
    BulkheadFull,
    BulkheadMetrics,
    Deadline,
    use_deadline,
)


class SteppedClock(FakeClock):
    """A FakeClock whose `sleep` returns only once the test has advanced past it.

    FakeClock's own `sleep` moves time at once, so a queued caller would time out
    before any slot could free up; here the test decides when the wait expires.
    """

    def __init__(self) -> None:
        super().__init__()
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        for wake_at, sleeper in list(self._sleepers):
            if wake_at <= self.monotonic() and not sleeper.done():
                sleeper.set_result(None)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        sleeper = asyncio.get_running_loop().create_future()
        entry = (self.monotonic() + seconds, sleeper)
        self._sleepers.append(entry)
        try:
            await sleeper
        finally:
            self._sleepers.remove(entry)


class Hold:
    """Occupies a bulkhead slot until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls = 0

    async def __call__(self, value: str = "done") -> str:
        self.calls += 1
        await self.release.wait()
        return value


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_rejects_at_once_when_every_slot_is_taken(clock: FakeClock) -> None:
    bulkhead = Bulkhead("catalog", BulkheadConfig(max_concurrent_calls=2), clock=clock)
    hold = Hold()
    running = [asyncio.create_task(bulkhead.call(hold)) for _ in range(2)]
    await settle()

    with pytest.raises(BulkheadFull) as rejected:
        await bulkhead.call(hold)
    assert rejected.value.name == "catalog"
    assert "bulkhead 'catalog' is full (2 calls in flight, no room to wait)" in str(rejected.value)
    assert hold.calls == 2
    assert bulkhead.metrics() == BulkheadMetrics("catalog", 2, in_flight=2, queued=0, rejected=1)

    hold.release.set()
    assert await asyncio.gather(*running) == ["done", "done"]
    assert bulkhead.in_flight == 0
    assert await bulkhead.call(hold) == "done"


async def test_a_queued_call_takes_the_next_free_slot() -> None:
    clock = SteppedClock()
    config = BulkheadConfig(max_concurrent_calls=1, max_wait_duration=5.0, max_queued_calls=1)
    bulkhead = Bulkhead("catalog", config, clock=clock)
    first, second = Hold(), Hold()
    running = asyncio.create_task(bulkhead.call(first))
    await settle()
    waiting = asyncio.create_task(bulkhead.call(second, "queued"))
    await settle()
    assert (bulkhead.in_flight, bulkhead.queued) == (1, 1)

    # The queue holds one caller: the next is refused without waiting.
    with pytest.raises(BulkheadFull):
        await bulkhead.call(Hold())
    assert bulkhead.rejected == 1

    first.release.set()
    await settle()
    assert second.calls == 1  # the freed slot went straight to the queued caller
    assert (bulkhead.in_flight, bulkhead.queued) == (1, 0)
    second.release.set()
    assert await running == "done"
    assert await waiting == "queued"
    assert bulkhead.in_flight == 0


async def test_a_queued_call_gives_up_after_max_wait_duration() -> None:
    clock = SteppedClock()
    bulkhead = Bulkhead("catalog", BulkheadConfig(max_concurrent_calls=1, max_wait_duration=5.0), clock=clock)
    hold = Hold()
    running = asyncio.create_task(bulkhead.call(hold))
    await settle()
    waiting = asyncio.create_task(bulkhead.call(Hold()))
    await settle()

    clock.advance(4.9)
    await settle()
    assert not waiting.done()
    clock.advance(0.1)
    with pytest.raises(BulkheadFull, match=r"no slot freed within 5.000 s"):
        await waiting
    assert bulkhead.metrics() == BulkheadMetrics("catalog", 1, in_flight=1, queued=0, rejected=1)

    hold.release.set()
    await running
    assert bulkhead.in_flight == 0


async def test_waiters_are_served_in_arrival_order() -> None:
    clock = SteppedClock()
    bulkhead = Bulkhead("catalog", BulkheadConfig(max_concurrent_calls=1, max_wait_duration=5.0), clock=clock)
    order: list[int] = []
    gate = asyncio.Event()

    async def work(n: int) -> None:
        async with bulkhead:
            order.append(n)
            await gate.wait()

    tasks = []
    for n in range(4):
        tasks.append(asyncio.create_task(work(n)))
        await settle()
    gate.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3]


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    clock = SteppedClock()
    bulkhead = Bulkhead("catalog", BulkheadConfig(max_concurrent_calls=1, max_wait_duration=5.0), clock=clock)
    hold = Hold()
    running = asyncio.create_task(bulkhead.call(hold))
    await settle()
    waiting = asyncio.create_task(bulkhead.call(Hold()))
    await settle()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert bulkhead.queued == 0

    hold.release.set()
    await running
    assert bulkhead.in_flight == 0
    assert bulkhead.rejected == 0


async def test_the_deadline_cuts_the_wait_short(clock: FakeClock) -> None:
    bulkhead = Bulkhead("catalog", BulkheadConfig(max_concurrent_calls=1, max_wait_duration=5.0), clock=clock)
    hold = Hold()
    running = asyncio.create_task(bulkhead.call(hold))
    await settle()
    with use_deadline(Deadline.after(0.0, clock=clock)), pytest.raises(BulkheadFull):
        await bulkhead.call(Hold())
    assert bulkhead.queued == 0
    hold.release.set()
    await running


async def test_a_slow_dependency_does_not_starve_another(clock: FakeClock) -> None:
    slow_catalog = Bulkhead("catalog", BulkheadConfig(max_concurrent_calls=2), clock=clock)
    accounts = Bulkhead("accounts", BulkheadConfig(max_concurrent_calls=2), clock=clock)
    stalled = Hold()
    stuck = [asyncio.create_task(slow_catalog.call(stalled)) for _ in range(2)]
    await settle()

    async def balance() -> int:
        return 1200

    # The catalog is saturated and refuses more work at once...
    with pytest.raises(BulkheadFull):
        await slow_catalog.call(balance)
    # ...while calls to accounts complete without waiting for the catalog.
    assert (
        await asyncio.wait_for(asyncio.gather(*(accounts.call(balance) for _ in range(10))), 1.0)
        == [1200] * 10
    )
    assert accounts.metrics().rejected == 0
    stalled.release.set()
    await asyncio.gather(*stuck)


async def test_decorator_and_async_with(clock: FakeClock) -> None:
    bulkhead = Bulkhead("catalog", BulkheadConfig(max_concurrent_calls=1), clock=clock)

    @bulkhead
    async def get_book(book_id: int) -> dict[str, Any]:
        """Load a book."""
        assert bulkhead.in_flight == 1
        return {"id": book_id}

    assert await get_book(9) == {"id": 9}
    assert get_book.__name__ == "get_book"
    with pytest.raises(ZeroDivisionError):
        async with bulkhead:
            _ = 1 / 0
    # A failing block still gives its slot back.
    assert bulkhead.in_flight == 0
    assert repr(bulkhead) == "<Bulkhead 'catalog' 0/1 in flight, 0 queued>"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_concurrent_calls": 0}, r"max_concurrent_calls must be an integer >= 1, got 0"),
        ({"max_wait_duration": -1}, r"max_wait_duration must be >= 0 seconds, got -1"),
        ({"max_queued_calls": -1}, r"max_queued_calls must be an integer >= 0, got -1"),
    ],
)
def test_config_validation_says_what_is_wrong(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BulkheadConfig(**kwargs)


def test_release_without_acquire_is_a_bug_said_out_loud(clock: FakeClock) -> None:
    bulkhead = Bulkhead("catalog", clock=clock)
    with pytest.raises(RuntimeError, match=r"release\(\) without a matching acquire\(\)"):
        bulkhead.release()
