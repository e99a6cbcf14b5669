"""The one way a service app is built: routes plus a lifespan that opens its
resources, with errors, metrics and health endpoints added the same way for all."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import structlog
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bookvault.logs import get_logger
from bookvault.web.deadline import DeadlineMiddleware
from bookvault.web.observability import MetricsMiddleware, ReadinessCheck, RequestMetrics
from bookvault.web.problems import PROBLEM_CONTENT_TYPE, HTTPProblem, problem_body, problem_response

log = get_logger(__name__)
READINESS_TIMEOUT_S = 2.0
_REQUEST_ID_HEADER = b"x-request-id"


class RequestIdMiddleware:
    """Binds the caller's `X-Request-Id` (or a new one) to logs and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == _REQUEST_ID_HEADER:
                request_id = value.decode("latin-1")[:128]
                break
        if not request_id:
            request_id = uuid.uuid4().hex
        encoded = request_id.encode("latin-1")

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (_REQUEST_ID_HEADER, encoded)]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id)


async def _on_problem(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPProblem):  # Starlette dispatches by type; this narrows it
        raise exc
    return problem_response(exc)


async def _on_http_exception(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):  # Starlette dispatches by type; this narrows it
        raise exc
    return Response(
        problem_body(exc.status_code, str(exc.detail)),
        status_code=exc.status_code,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=exc.headers,
    )


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # Log the trace for us; the caller gets a problem body, never a stack trace.
    log.error("unhandled error", path=request.url.path, exc_info=exc)
    return Response(
        problem_body(500, "an unexpected error occurred; it has been logged"),
        status_code=500,
        media_type=PROBLEM_CONTENT_TYPE,
    )


def create_service_app(
    name: str,
    routes: Sequence[BaseRoute],
    lifespan: Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]],
    readiness_checks: Callable[[Starlette], Sequence[ReadinessCheck]],
    registry: CollectorRegistry | None = None,
) -> Starlette:
    """Build a service app. `lifespan` opens resources onto `app.state`;
    `readiness_checks(app)` returns the probes `/readyz` runs."""
    registry = registry or CollectorRegistry()
    metrics = RequestMetrics(registry)

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        failures: list[str] = []
        for check in readiness_checks(request.app):
            try:
                await asyncio.wait_for(check(), READINESS_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                failures.append(f"{getattr(check, '__name__', 'check')}: {exc or type(exc).__name__}")
        if failures:
            return Response(
                problem_body(503, "; ".join(failures), title="Not Ready"),
                status_code=503,
                media_type=PROBLEM_CONTENT_TYPE,
            )
        return PlainTextResponse("ready")

    async def metrics_endpoint(_request: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @contextlib.asynccontextmanager
    async def app_lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.registry = registry
        async with lifespan(app):
            log.info("service started", service=name)
            yield
        log.info("service stopped", service=name)

    operational = [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    return Starlette(
        routes=[*operational, *routes],
        lifespan=app_lifespan,
        middleware=[
            Middleware(MetricsMiddleware, metrics=metrics),
            Middleware(RequestIdMiddleware),
            Middleware(DeadlineMiddleware),
        ],
        exception_handlers={
            HTTPProblem: _on_problem,
            HTTPException: _on_http_exception,
            Exception: _on_unexpected,
        },
    )
