"""The gateway's Prometheus metrics, cheap enough for the hot path.

Request metrics use the same names as every other process (`RequestMetrics`),
labelled by route (the service a prefix belongs to, or the gateway's own
endpoint), never the raw path. Label children are looked up once per distinct
(method, route, status) and kept, since `.labels()` costs more than the
observation itself.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bookvault.web.observability import RequestMetrics

__all__ = ["GatewayMetrics"]

# Anything else is counted as OTHER, so made-up methods cannot grow the label set.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class GatewayMetrics:
    __slots__ = ("_children", "_errors", "_requests", "registry", "upstream_errors")

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._requests = RequestMetrics(registry)
        self.upstream_errors = Counter(
            "bookvault_gateway_upstream_errors",
            "Upstream requests that failed, by upstream and kind (timeout, connect, reset, protocol)",
            ["upstream", "kind"],
            registry=registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._errors: dict[tuple[str, str], Counter] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children_for(method, route, status)
        children[0].inc()
        children[1].observe(seconds)

    def upstream_error(self, upstream: str, kind: str) -> None:
        key = (upstream, kind)
        child = self._errors.get(key)
        if child is None:
            child = self._errors[key] = self.upstream_errors.labels(upstream, kind)
        child.inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def _children_for(self, method: str, route: str, status: int) -> tuple[Counter, Histogram]:
        label = method if method in _KNOWN_METHODS else "OTHER"
        code = str(status)
        children = (
            self._requests.requests.labels(label, route, code),
            self._requests.latency.labels(label, route, code),
        )
        if label == method:  # unknown methods are not cached, so they cannot grow the cache either
            self._children[(method, route, status)] = children
        return children
