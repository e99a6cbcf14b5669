"""Borrowing → catalog through a fault proxy: the breaker, the retry budget and the
deadline, observed the way an operator would (answers, /metrics, the proxy's counts)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from typing import TYPE_CHECKING

import aiohttp
import pytest

from bookvault.auth import TokenCodec
from bookvault.borrowing.catalog_client import CatalogClient, CatalogUnavailable, ServiceToken, catalog_policy
from bookvault.config import Settings
from bookvault.faults import FaultProxy, HttpErrors, Latency, Outage
from bookvault.patterns.resilience import DEADLINE_HEADER
from bookvault.web.resilience import Guards

if TYPE_CHECKING:
    from tests.integration.resilience.conftest import Library, StartBorrowing
    from tests.support.processes import Process

pytestmark = pytest.mark.stack

_members = itertools.count(910_000)
# Seed 002 values the breaker runs with (the library defaults).
MINIMUM_CALLS = 5
HALF_OPEN_PERMITS = 3


async def wait_for_state(
    borrowing: Process, http: aiohttp.ClientSession, state: str, within_s: float
) -> None:
    """Poll /metrics until the catalog breaker reports `state` (it moves lazily, on a read)."""
    give_up = time.monotonic() + within_s
    while (await borrowing.breaker(http, "catalog"))["state"] != state:
        assert time.monotonic() < give_up, f"the breaker did not become {state} within {within_s} s"
        await asyncio.sleep(0.05)  # polling a separate process, not timing an assertion


async def test_catalog_down_opens_the_breaker_and_it_recovers_through_half_open(
    start_borrowing: StartBorrowing, catalog_proxy: FaultProxy, library: Library, http: aiohttp.ClientSession
) -> None:
    book_id = await library.new_book(copies=10)
    # Retries off: every catalog call is one breaker outcome, so the count is exact.
    borrowing = await start_borrowing(profile="optimized", retries=False, breaker_wait_s=1.0)
    member = next(_members)

    catalog_proxy.set(Outage())
    # A failed reserve is followed by a release: two failures per refused borrow.
    for borrowed in range(1, 3):
        status, headers, _ = await library.borrow(borrowing, member, book_id)
        assert status == 503
        assert int(headers["Retry-After"]) > 0
        breaker = await borrowing.breaker(http, "catalog")
        assert breaker["state"] == "closed"
        assert breaker["failed"] == 2 * borrowed < MINIMUM_CALLS
    status, headers, body = await library.borrow(borrowing, member, book_id)
    assert status == 503
    assert "no loan was made" in body["detail"]
    opened = await borrowing.breaker(http, "catalog")
    assert opened["state"] == "open"

    # Open: refused here, the catalog is not even dialled, and nothing is left half-done.
    connections = catalog_proxy.connections_accepted
    for _ in range(5):
        status, headers, body = await library.borrow(borrowing, member, book_id)
        assert status == 503
        assert int(headers["Retry-After"]) > 0
    refused = await borrowing.breaker(http, "catalog")
    assert refused["not_permitted"] - opened["not_permitted"] == 5
    assert catalog_proxy.connections_accepted == connections
    statuses = await library.loan_statuses(book_id)
    assert statuses[-5:] == ["cancelled"] * 5  # never reserved, so cancelled at once

    # After the wait in OPEN the breaker lets probes through; they succeed and close it.
    catalog_proxy.clear()
    await wait_for_state(borrowing, http, "half_open", within_s=5.0)
    for probe in range(1, HALF_OPEN_PERMITS + 1):
        status, _, body = await library.borrow(borrowing, next(_members), book_id)
        assert status == 201, body
        expected = "closed" if probe == HALF_OPEN_PERMITS else "half_open"
        assert (await borrowing.breaker(http, "catalog"))["state"] == expected


async def test_an_open_breaker_refuses_without_touching_the_network(
    system: Settings, catalog_proxy: FaultProxy
) -> None:
    """An open breaker answers from memory: no connection is even attempted, which is
    what makes the refusal fast (its cost per call is measured by
    `python -m bookvault.bench.resilience_bench`, "refused" rows)."""
    settings = Settings(profile="optimized", retries=False)
    guards = Guards(settings)
    policy = catalog_policy(guards, settings)
    breaker = policy.breaker
    assert breaker is not None
    catalog_proxy.set(Outage())
    codec = TokenCodec(system.resolved_jwt_secret())
    async with aiohttp.ClientSession() as session:
        client = CatalogClient(session, catalog_proxy.url, ServiceToken(codec), 2.0, policy)
        for attempt in itertools.count():
            assert attempt < 50
            with contextlib.suppress(CatalogUnavailable):
                await client.reserve(1, f"fast-fail-{attempt}")
            if breaker.metrics().state.value == "open":
                break
        connections_before = catalog_proxy.connections_accepted
        for attempt in range(200):
            with pytest.raises(CatalogUnavailable):
                await client.reserve(1, f"refused-{attempt}")
    assert breaker.metrics().not_permitted_calls == 200
    assert catalog_proxy.connections_accepted == connections_before


async def test_a_slow_catalog_opens_the_breaker_on_slow_calls(
    start_borrowing: StartBorrowing, catalog_proxy: FaultProxy, library: Library, http: aiohttp.ClientSession
) -> None:
    book_id = await library.new_book(copies=20)
    borrowing = await start_borrowing(
        profile="optimized", retries=False, breaker_slow_call_s=0.2, catalog_timeout_s=5.0
    )
    catalog_proxy.set(Latency(ms=400))
    # Slow but successful: every borrow is granted, and each call counts as slow.
    replies = await asyncio.gather(
        *(library.borrow(borrowing, next(_members), book_id) for _ in range(MINIMUM_CALLS))
    )
    assert [status for status, _, _ in replies] == [201] * MINIMUM_CALLS
    breaker = await borrowing.breaker(http, "catalog")
    assert breaker["state"] == "open"  # 100% slow calls ≥ the slow-call rate threshold

    status, headers, _ = await library.borrow(borrowing, next(_members), book_id)
    assert status == 503
    assert int(headers["Retry-After"]) > 0


async def test_a_borrow_answers_within_its_deadline_when_the_catalog_stalls(
    start_borrowing: StartBorrowing, catalog_proxy: FaultProxy, library: Library
) -> None:
    book_id = await library.new_book(copies=5)
    borrowing = await start_borrowing(profile="optimized", catalog_timeout_s=10.0)
    catalog_proxy.set(Latency(ms=3000))
    member = next(_members)
    started = time.perf_counter()
    status, headers, body = await library.borrow(borrowing, member, book_id, {DEADLINE_HEADER: "800"})
    elapsed = time.perf_counter() - started
    # A clean refusal the client can act on, long before the 3 s the stalled catalog
    # would have taken: the bound sits halfway, so a loaded machine does not flake it
    # while a lost deadline (waiting out the catalog) still fails it.
    assert status == 503, body
    assert int(headers["Retry-After"]) > 0
    assert elapsed < 2.0
    assert "active" not in await library.loan_statuses(book_id)


async def test_half_the_catalog_calls_failing_costs_at_most_20_percent_more_attempts(
    start_borrowing: StartBorrowing, catalog_proxy: FaultProxy, library: Library
) -> None:
    book_id = await library.new_book(copies=1000)
    # Retries alone: an open breaker would hide how many attempts the retries make.
    borrowing = await start_borrowing(profile="baseline", retries=True)
    catalog_proxy.set(HttpErrors(share=0.5))
    gate = asyncio.Semaphore(20)

    async def one() -> int:
        async with gate:
            status, headers, _ = await library.borrow(borrowing, next(_members), book_id)
            if status == 503:
                assert int(headers["Retry-After"]) > 0
            return status

    statuses = await asyncio.gather(*(one() for _ in range(600)))
    assert set(statuses) <= {201, 503}
    refused = statuses.count(503)
    # Each borrow reserves once; each refused one also releases once.
    calls = len(statuses) + refused
    attempts = catalog_proxy.requests_forwarded + catalog_proxy.requests_failed_by_toxic
    assert attempts <= 1.2 * calls, (attempts, calls)
    # The retries the budget allowed did turn failures into loans.
    assert attempts > calls
    assert statuses.count(201) > len(statuses) // 2
