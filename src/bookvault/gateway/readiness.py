"""`/readyz`: the gateway is ready when every upstream's `/healthz` answers.

The probes run concurrently with a short timeout of their own, so one hung
service makes readiness fail fast instead of holding the probe for the full
upstream timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp

from bookvault.gateway.routing import Route
from bookvault.gateway.upstream_errors import UPSTREAM_ERRORS, error_kind

__all__ = ["PROBE_TIMEOUT_S", "unready_upstreams"]

PROBE_TIMEOUT_S = 1.0


async def unready_upstreams(
    session: aiohttp.ClientSession, routes: Sequence[Route], timeout_s: float = PROBE_TIMEOUT_S
) -> list[str]:
    """One line per upstream that is not healthy, e.g. "borrowing: connect"; empty when all are."""
    limit = aiohttp.ClientTimeout(total=timeout_s)
    results = await asyncio.gather(*(_probe(session, route, limit) for route in routes))
    return [f"{route.service}: {problem}" for route, problem in zip(routes, results, strict=True) if problem]


async def _probe(session: aiohttp.ClientSession, route: Route, limit: aiohttp.ClientTimeout) -> str | None:
    try:
        async with session.get(f"{route.origin}/healthz", timeout=limit, allow_redirects=False) as resp:
            await resp.read()
            return None if resp.status == 200 else f"status {resp.status}"
    except UPSTREAM_ERRORS as exc:
        return error_kind(exc)
