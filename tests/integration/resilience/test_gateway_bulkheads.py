"""Gateway → services: a stalled catalog fills only its own bulkhead; accounts keeps
answering, and the excess catalog calls are refused fast with 503 + Retry-After."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from tests.support.processes import Process, free_port

from bookvault.config import Settings
from bookvault.faults import FaultProxy, Latency, Outage

if TYPE_CHECKING:
    from tests.integration.resilience.conftest import Library

pytestmark = pytest.mark.stack

SLOTS = 3


@pytest.fixture
async def gateway(system: Settings, catalog_proxy: FaultProxy, workdir: Path) -> AsyncIterator[Process]:
    """A gateway whose catalog upstream is the fault proxy, with small catalog bulkheads."""
    settings = dataclasses.replace(
        system,
        gateway_port=free_port(),
        catalog_port=catalog_proxy.port,
        profile="optimized",
        rate_limit=False,
        gateway_cache=False,
        upstream_bulkhead_calls=SLOTS,
        bulkhead_max_wait_s=0.2,
        breaker_wait_s=1.0,
    )
    process = Process.start("gateway", settings, workdir)
    await process.wait_ready()
    yield process
    await asyncio.to_thread(process.stop)


async def get(http: aiohttp.ClientSession, url: str, token: str) -> tuple[int, dict[str, str], bytes]:
    async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def test_a_stalled_catalog_does_not_hold_up_accounts(
    gateway: Process,
    catalog_proxy: FaultProxy,
    library: Library,
    http: aiohttp.ClientSession,
    make_token: Callable[..., str],
) -> None:
    book_id = await library.new_book(copies=1)
    token = make_token("1", "admin")
    catalog_url = f"{gateway.url}/api/catalog/v1/books/{book_id}"
    accounts_url = f"{gateway.url}/api/accounts/v1/members/1/balance"
    healthy_status, _, _ = await get(http, accounts_url, token)
    assert healthy_status < 500

    catalog_proxy.set(Latency(ms=3000))
    slow = [asyncio.create_task(get(http, catalog_url, token)) for _ in range(SLOTS * 2)]
    give_up = time.monotonic() + 5.0
    while (await gateway.breaker(http, "catalog"))["bulkhead_in_flight"] < SLOTS:
        assert time.monotonic() < give_up, "the slow catalog calls never filled the bulkhead"
        await asyncio.sleep(0.02)  # polling a separate process, not timing an assertion

    # The catalog's slots are all held by stalled calls; accounts is served regardless.
    for _ in range(20):
        status, _, _ = await get(http, accounts_url, token)
        assert status == healthy_status
    during = await gateway.breaker(http, "catalog")
    assert during["bulkhead_in_flight"] == SLOTS

    replies = await asyncio.gather(*slow)
    statuses = sorted(status for status, _, _ in replies)
    assert statuses == [200] * SLOTS + [503] * SLOTS
    for status, headers, body in replies:
        if status == 503:
            assert int(headers["Retry-After"]) > 0
            assert b"concurrency limit" in body
    assert (await gateway.breaker(http, "catalog"))["bulkhead_rejected"] == SLOTS
    accounts = await gateway.breaker(http, "accounts")
    assert accounts["bulkhead_rejected"] == 0


async def test_the_gateway_breaker_opens_on_a_dead_upstream_and_answers_503(
    gateway: Process, catalog_proxy: FaultProxy, library: Library, http: aiohttp.ClientSession
) -> None:
    book_id = await library.new_book(copies=1)
    catalog_url = f"{gateway.url}/api/catalog/v1/books/{book_id}"
    catalog_proxy.set(Outage())
    for _ in range(5):
        async with http.get(catalog_url) as resp:
            assert resp.status in (502, 503, 504)
    breaker: dict[str, Any] = await gateway.breaker(http, "catalog")
    assert breaker["state"] == "open"
    connections = catalog_proxy.connections_accepted
    async with http.get(catalog_url) as resp:
        assert resp.status == 503
        assert int(resp.headers["Retry-After"]) >= 1
        assert "paused" in (await resp.json())["detail"]
    assert catalog_proxy.connections_accepted == connections
