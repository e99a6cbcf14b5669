"""The gateway as a plain ASGI app: no framework between the server and the proxy.

Per request: read the headers once, pick the route, run the stage pipeline
(edge auth, body limit, then the upstream proxy), send the reply with its
`X-Request-Id`, record metrics. Everything that can be worked out ahead of a
request (routes, header sets, the composed pipeline, metric children) is.

    granian --interface asgi --factory bookvault.gateway.app:create_app
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry

from bookvault.auth import TokenCodec
from bookvault.config import Settings, load_settings
from bookvault.gateway.asgi import Receive, Scope, Send
from bookvault.gateway.auth import EdgeAuth
from bookvault.gateway.body import BodyReader, ClientDisconnected, RequestBody
from bookvault.gateway.client_address import TrustedProxies
from bookvault.gateway.exchange import Exchange, GatewayProblem, Reply, Stage, compose, problem_reply
from bookvault.gateway.headers import read_request_headers
from bookvault.gateway.metrics import GatewayMetrics
from bookvault.gateway.pipeline import ManagedStage, MeteredStage, pattern_stages
from bookvault.gateway.proxy import UpstreamProxy
from bookvault.gateway.readiness import unready_upstreams
from bookvault.gateway.request_id import request_id_for
from bookvault.gateway.revocation_api import AUTH_PREFIX, AuthEndpoints
from bookvault.gateway.revocations import RevocationCollector, RevocationList, revocation_list
from bookvault.gateway.routing import RouteTable, has_dot_segment
from bookvault.gateway.upstream_client import UpstreamPoolCollector, open_session
from bookvault.gateway.upstream_errors import UPSTREAM_ERRORS, error_kind
from bookvault.logs import configure_logging, get_logger
from bookvault.web.resilience import Guards

__all__ = ["GatewayApp", "create_app"]

log = get_logger(__name__)

_TEXT_PLAIN = (b"content-type", b"text/plain; charset=utf-8")
_REQUEST_ID = b"x-request-id"
_ALLOW_READS = {"Allow": "GET, HEAD"}
# Metrics route label for requests no route matched (kept apart from real routes).
_UNMATCHED = "unmatched"
_NO_ROUTE = "no such route: public paths start with /api/catalog/v1, /api/borrowing/v1 or /api/accounts/v1"

OwnEndpoint = Callable[[], Awaitable[Reply]]


class GatewayApp:
    """One gateway process: routes, the composed stage pipeline, metrics, and the
    upstream client it opens and closes with the ASGI lifespan.

    `extra_stages` run after authentication and body reading, just before the
    proxy: the place for a limiter, a response cache or compression to join.
    """

    def __init__(
        self,
        settings: Settings,
        codec: TokenCodec,
        *,
        registry: CollectorRegistry | None = None,
        extra_stages: tuple[Stage, ...] = (),
        revocations: RevocationList | None = None,
    ) -> None:
        self.settings = settings
        self.routes = RouteTable.from_settings(settings)
        self.metrics = GatewayMetrics(registry or CollectorRegistry())
        self._pool_metrics = UpstreamPoolCollector(self.routes.routes)
        self.metrics.registry.register(self._pool_metrics)
        self._trusted = TrustedProxies(settings.trusted_proxies)
        self.guards = Guards(settings)
        self.metrics.registry.register(self.guards.collector())
        self._proxy = UpstreamProxy(
            settings.upstream_timeout_s, settings.upstream_connect_timeout_s, self.guards
        )
        # Auth before the body: an unauthenticated caller never gets to upload.
        # The body has no timeout setting of its own yet; the upstream's bounds it as well as anything.
        self._body_timeout_s = settings.upstream_timeout_s
        body = BodyReader(settings.max_body_bytes, timeout_s=self._body_timeout_s)
        # Token revocation (see `revocations`): the codec consults the list; it is not a stage.
        self._revocations = revocations
        if revocations is not None:
            self.metrics.registry.register(RevocationCollector(revocations))
        self._auth_endpoints = AuthEndpoints(codec, revocations, max_ttl_s=settings.jwt_max_ttl_s)
        stages: tuple[Stage, ...] = (EdgeAuth(codec, revocations), body, *extra_stages)
        self._managed = [stage for stage in extra_stages if isinstance(stage, ManagedStage)]
        for stage in extra_stages:
            if isinstance(stage, MeteredStage):
                self.metrics.registry.register(stage.collector)
        self._handler = compose(stages, self._proxy)
        self._own: dict[str, OwnEndpoint] = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/metrics": self._metrics,
        }
        self._access_log = settings.access_log

    # --- ASGI -----------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})

    async def startup(self) -> None:
        session = open_session(self.routes.routes)
        self._proxy.session = session
        self._pool_metrics.session = session
        if self._revocations is not None:
            await self._revocations.start()
        for stage in self._managed:
            await stage.start()

    async def shutdown(self) -> None:
        for stage in reversed(self._managed):
            await stage.close()
        if self._revocations is not None:
            await self._revocations.close()
        session, self._proxy.session = self._proxy.session, None
        self._pool_metrics.session = None
        if session is not None:
            await session.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # noqa: BLE001 - reported to the server, which stops
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                log.info("gateway started", routes=[route.prefix for route in self.routes.routes])
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- one request ----------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        head = read_request_headers(scope["headers"])
        request_id = request_id_for(head.request_id)
        body = RequestBody(receive, head, scope.get("http_version", "1.1"))
        label = _UNMATCHED
        own = self._own.get(path)
        if own is not None:
            label = path[1:]
            reply = await own() if method in ("GET", "HEAD") else problem_reply(405, "use GET", _ALLOW_READS)
        else:
            route = self.routes.match(path)
            if route is None and path.startswith(AUTH_PREFIX):
                label = "auth"
                reply = await self._auth_endpoints(method, path, head, body)
            elif route is None:
                reply = problem_reply(404, _NO_ROUTE)
            elif has_dot_segment(path):
                reply = problem_reply(400, "paths must not contain '.' or '..' segments")
            else:
                label = route.service
                peer = scope.get("client")
                address = self._trusted.resolve(peer[0] if peer else "unknown", head.forwarded_for)
                exchange = Exchange(
                    scope=scope,
                    request_body=body,
                    method=method,
                    path=path,
                    route=route,
                    head=head,
                    request_id=request_id,
                    client=address.client,
                    forwarded_for=address.forwarded_for,
                    peer_trusted=address.peer_trusted,
                )
                reply = await self._run_pipeline(exchange)
        try:
            if not body.finished:
                # Answered without the body (refused, or never wanted): drain what the client is
                # still sending, so it reads this answer instead of a reset connection.
                await body.discard_rest(self._body_timeout_s)
            if reply.upstream_error is not None:
                self.metrics.upstream_error(label, reply.upstream_error)
            await self._send(reply, request_id, method == "HEAD", label, send)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.observe(method, label, reply.status, elapsed)
            if self._access_log:
                log.info(
                    "request",
                    method=method,
                    path=path,
                    status=reply.status,
                    duration_ms=round(elapsed * 1000, 3),
                    request_id=request_id.decode("ascii"),
                )

    async def _run_pipeline(self, exchange: Exchange) -> Reply:
        """The stages' reply, or the problem one of them raised; never an exception."""
        try:
            return await self._handler(exchange)
        except GatewayProblem as problem:
            if problem.upstream_error is not None:
                log.warning(
                    "upstream failed",
                    upstream=exchange.route.service,
                    kind=problem.upstream_error,
                    cause=repr(problem.__cause__),
                    request_id=exchange.request_id.decode("ascii"),
                )
            return problem.reply()
        except ClientDisconnected:
            # Still answered (and counted); the server drops the reply if the client is gone.
            return problem_reply(400, "the request body was not completed")
        except Exception:  # the caller gets a problem, the log gets the trace
            log.exception("gateway error", path=exchange.path, request_id=exchange.request_id.decode("ascii"))
            return problem_reply(500, "an unexpected error occurred in the gateway; it has been logged")

    async def _send(self, reply: Reply, request_id: bytes, head_only: bool, label: str, send: Send) -> None:
        headers = reply.headers
        headers.append((_REQUEST_ID, request_id))
        stream = reply.stream
        if stream is None:
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if head_only else reply.body})
            return
        try:
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            if reply.body:
                await send({"type": "http.response.body", "body": reply.body, "more_body": True})
            async for chunk in stream:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UPSTREAM_ERRORS as exc:
            # The status line is gone already. Returning without the final body
            # message makes the server cut the response short: the only honest signal left.
            kind = error_kind(exc)
            self.metrics.upstream_error(label, kind)
            log.warning("upstream failed mid-response", upstream=label, kind=kind, cause=repr(exc))
            return
        finally:
            await stream.aclose()  # releases the upstream connection whatever happened
        await send({"type": "http.response.body", "body": b""})

    # --- the gateway's own endpoints -------------------------------------

    async def _healthz(self) -> Reply:
        return Reply(200, [_TEXT_PLAIN, (b"content-length", b"2")], b"ok")

    async def _readyz(self) -> Reply:
        session = self._proxy.session
        if session is None:
            return problem_reply(503, "the gateway is starting or stopping")
        failures = await unready_upstreams(session, self.routes.routes)
        if failures:
            return problem_reply(503, "upstreams not ready: " + "; ".join(failures))
        return Reply(200, [_TEXT_PLAIN, (b"content-length", b"5")], b"ready")

    async def _metrics(self) -> Reply:
        body, content_type = self.metrics.render()
        headers = [
            (b"content-type", content_type.encode("ascii")),
            (b"content-length", str(len(body)).encode()),
        ]
        return Reply(200, headers, body)


def create_app(settings: Settings | None = None) -> GatewayApp:
    """The gateway app for `settings` (default: from the environment)."""
    settings = settings or load_settings()
    configure_logging(settings.log_level, service="gateway")
    revocations = revocation_list(settings)
    codec = TokenCodec(
        settings.resolved_jwt_secret(),
        settings.jwt_algorithm,
        settings.jwt_issuer,
        revocations=revocations,
        max_ttl_s=settings.jwt_max_ttl_s,
    )
    return GatewayApp(settings, codec, extra_stages=pattern_stages(settings), revocations=revocations)
