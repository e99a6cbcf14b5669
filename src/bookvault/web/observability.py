"""Request metrics and the three endpoints every process serves:
`/healthz` (alive), `/readyz` (dependencies reachable), `/metrics` (Prometheus)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Latency buckets tuned for a local system: sub-millisecond up to the gateway timeout.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

ReadinessCheck = Callable[[], Awaitable[None]]


class RequestMetrics:
    """The request counter and latency histogram of one process."""

    def __init__(self, registry: CollectorRegistry, prefix: str = "bookvault") -> None:
        self.registry = registry
        self.requests = Counter(
            f"{prefix}_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{prefix}_http_request_duration_seconds",
            "HTTP request latency by method, route template and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        code = str(status)
        self.requests.labels(method, route, code).inc()
        self.latency.labels(method, route, code).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Times every HTTP request and labels it with the matched route template,
    never the raw path (ids in paths would explode the label set)."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.observe(scope["method"], template, status, time.perf_counter() - started)
