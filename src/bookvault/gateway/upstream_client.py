"""The one pooled HTTP client a gateway process uses for every upstream.

Opened in the app's lifespan (never at import), sized per upstream host, and
stripped of everything a client adds on its own: no cookies, no decompression
(bodies pass through as the service encoded them), no default headers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import aiohttp
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from yarl import URL

from bookvault.gateway.routing import Route

__all__ = ["PoolSizing", "UpstreamPoolCollector", "open_session"]

# aiohttp adds these unless told not to; the gateway forwards the client's own
# copies (or none) instead.
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


@dataclasses.dataclass(frozen=True, slots=True)
class PoolSizing:
    # Keep-alive connections per upstream: enough for a worker's concurrency at
    # ~10k req/s with millisecond upstreams; a full pool queues, it never fails.
    per_host: int = 100
    keepalive_s: float = 15.0
    dns_cache_s: int = 300


def open_session(routes: Sequence[Route], sizing: PoolSizing = PoolSizing()) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=sizing.per_host * len(routes),
        limit_per_host=sizing.per_host,
        keepalive_timeout=sizing.keepalive_s,
        ttl_dns_cache=sizing.dns_cache_s,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=_NO_AUTO_HEADERS,
        # Timeouts are set per request by the proxy; no session-wide default applies.
        timeout=aiohttp.ClientTimeout(total=None),
    )


class UpstreamPoolCollector(Collector):
    """Connections in use and idle per upstream, read from the connector at scrape time.

    aiohttp exposes no public pool statistics, so this reads two private
    attributes defensively: if a release renames them the gauges go missing,
    and nothing else breaks.
    """

    def __init__(self, routes: Iterable[Route]) -> None:
        self._names: dict[tuple[str | None, int | None], str] = {}
        for route in routes:
            origin = URL(route.origin)
            self._names[(origin.host, origin.port)] = route.service
        self.session: aiohttp.ClientSession | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_use = GaugeMetricFamily(
            "bookvault_gateway_upstream_connections_in_use",
            "Upstream connections currently serving a request",
            labels=["upstream"],
        )
        idle = GaugeMetricFamily(
            "bookvault_gateway_upstream_connections_idle",
            "Upstream keep-alive connections waiting in the pool",
            labels=["upstream"],
        )
        connector = self.session.connector if self.session is not None else None
        acquired: dict[Any, Any] = getattr(connector, "_acquired_per_host", {})
        pooled: dict[Any, Any] = getattr(connector, "_conns", {})
        for (host, port), name in self._names.items():
            in_use.add_metric([name], float(_count(acquired, host, port)))
            idle.add_metric([name], float(_count(pooled, host, port)))
        yield in_use
        yield idle


def _count(per_key: dict[Any, Any], host: str | None, port: int | None) -> int:
    return sum(len(items) for key, items in per_key.items() if key[0] == host and key[1] == port)
