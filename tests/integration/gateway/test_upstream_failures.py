"""What a client sees when an upstream is down or slow, and what operators see."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import pytest

if TYPE_CHECKING:
    from tests.integration.gateway.conftest import EchoUpstream, Gateway


async def test_an_upstream_nobody_listens_on_is_503_with_retry_after(
    gateway: Gateway, client: aiohttp.ClientSession
) -> None:
    # borrowing points at a port with no listener
    async with client.get(f"{gateway.url}/api/borrowing/v1/loans", headers=gateway.bearer("7")) as resp:
        assert resp.status == 503
        assert int(resp.headers["Retry-After"]) > 0
        assert resp.content_type == "application/problem+json"
        problem = await resp.json()
    assert problem["status"] == 503
    assert "borrowing" in problem["detail"]
    assert "Traceback" not in problem["detail"]


async def test_an_upstream_slower_than_the_timeout_is_504(
    gateway: Gateway, upstream: EchoUpstream, client: aiohttp.ClientSession
) -> None:
    # The upstream holds /slow until the test session ends; the gateway's
    # timeout (a fraction of a second here) decides when the client hears back.
    async with client.get(f"{gateway.url}/api/catalog/v1/slow") as resp:
        assert resp.status == 504
        assert resp.content_type == "application/problem+json"
        assert "catalog" in (await resp.json())["detail"]
    assert len(upstream.saw("/slow")) == 1


async def test_readiness_names_the_upstream_that_is_down(
    gateway: Gateway, client: aiohttp.ClientSession
) -> None:
    async with client.get(f"{gateway.url}/readyz") as resp:
        assert resp.status == 503
        detail = (await resp.json())["detail"]
    assert "borrowing" in detail
    assert "catalog" not in detail
    async with client.get(f"{gateway.url}/healthz") as resp:
        assert resp.status == 200  # alive, even though not every upstream is


async def test_metrics_count_requests_by_route_and_failures_by_kind(
    gateway: Gateway, client: aiohttp.ClientSession
) -> None:
    for book in range(3):
        async with client.get(f"{gateway.url}/api/catalog/v1/books/metrics-{book}") as resp:
            assert resp.status == 200
    async with client.get(f"{gateway.url}/api/borrowing/v1/loans", headers=gateway.bearer("7")) as resp:
        assert resp.status == 503
    async with client.get(f"{gateway.url}/metrics") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        text = await resp.text()
    assert 'bookvault_http_requests_total{method="GET",route="catalog",status="200"}' in text
    assert 'bookvault_http_request_duration_seconds_bucket{le="0.005",method="GET",route="catalog"' in text
    assert 'bookvault_gateway_upstream_errors_total{kind="connect",upstream="borrowing"}' in text
    # Pool gauges per upstream origin (catalog and accounts share the echo server here).
    assert 'bookvault_gateway_upstream_connections_in_use{upstream="borrowing"} 0.0' in text
    assert "bookvault_gateway_upstream_connections_idle{upstream=" in text
    assert "metrics-1" not in text  # raw paths never become labels


async def test_an_upstream_failing_mid_body_cuts_the_response_short(
    gateway: Gateway, client: aiohttp.ClientSession
) -> None:
    # The status has already gone out; the client must still notice the body is incomplete.
    async with client.get(f"{gateway.url}/api/catalog/v1/truncated") as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    async with client.get(f"{gateway.url}/metrics") as resp:
        text = await resp.text()
    assert 'bookvault_gateway_upstream_errors_total{kind="protocol",upstream="catalog"} 1.0' in text
