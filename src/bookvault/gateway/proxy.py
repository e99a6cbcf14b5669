"""The last stage: send the exchange to its upstream and relay the answer.

Small responses with a Content-Length are read whole and sent in one message
(the common case: JSON documents); anything else is streamed back chunk by
chunk. Either way the upstream's status and end-to-end headers pass through,
Content-Length included.

Resilience (each layer only with its switch on; see `bookvault.web.resilience`):

- one circuit breaker and one bulkhead per upstream service, so a failing or
  stalled service costs only its own slots and, once its breaker opens, answers
  503 + Retry-After in microseconds instead of holding clients for the timeout;
- the breaker counts as failures what says the service is in trouble: transport
  errors, timeouts, and 502/504 answers. A 503 is the service shedding load or
  reporting its own dependency (borrowing answers 503 while the catalog is down,
  yet still lists loans), so it does not open the gateway's breaker; nor does a
  500, which is one request's bug, not an outage;
- retries only for requests safe to repeat: GET and HEAD, or a request carrying
  an `Idempotency-Key` (the service deduplicates by it). Only when the failed
  attempt certainly did nothing or said so: a connect failure (no byte of the
  request reached the service) or a 503 answer (the service refused it). Never
  after a reset, a timeout or a 5xx other than 503, where the request may have
  been processed, and never once a response has started streaming to the client.
  The retry budget keeps retries under 20% of requests, so a dying upstream does
  not receive a retry storm;
- a deadline: the gateway's upstream timeout becomes the request's deadline,
  sent as `X-Request-Deadline-Ms` (the remaining budget, re-encoded per attempt)
  and honoured by every service (`bookvault.web.deadline`), so no retry, queue
  wait or downstream call outlives the client's wait. A client's own copy of that
  header is replaced, never passed on.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator
from urllib.parse import quote_from_bytes

import aiohttp
from yarl import URL

from bookvault.gateway.asgi import Scope
from bookvault.gateway.exchange import Exchange, GatewayProblem, Reply
from bookvault.gateway.headers import filter_response_headers
from bookvault.gateway.upstream_errors import RETRY_AFTER_S, UPSTREAM_ERRORS, problem_for
from bookvault.patterns.resilience import (
    DEADLINE_HEADER,
    BulkheadFull,
    CallNotPermitted,
    CallRejected,
    Deadline,
    Policy,
)
from bookvault.web.resilience import Guards

__all__ = ["UpstreamProxy", "upstream_target"]

# Bigger bodies are streamed rather than held, so memory per request stays bounded.
BUFFER_LIMIT_BYTES = 64 * 1024
_BODILESS_STATUS = frozenset({204, 304})
# Everything printable in ASCII passes through as it came, percent-escapes included.
_PASS_THROUGH = "".join(chr(c) for c in range(0x21, 0x7F))
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_DEADLINE = DEADLINE_HEADER.lower()
# Answers that mean the upstream itself is failing (see the module docstring).
_BREAKER_STATUSES = frozenset({502, 504})
# Retrying starts quickly at the edge: the whole exchange fits in the upstream timeout.
_RETRY_INITIAL_WAIT_S = 0.05


# A guarded attempt's outcome: the response, and its body when already read (a 503).
_Answer = tuple[aiohttp.ClientResponse, bytes | None]


def _failed_answer(answer: _Answer) -> bool:
    return answer[0].status in _BREAKER_STATUSES


def _refused_answer(answer: _Answer) -> bool:
    return answer[0].status == 503


class UpstreamProxy:
    """Holds the client session (opened in the lifespan) and the per-request timeouts."""

    __slots__ = ("_guards", "_policies", "_timeout", "_total_s", "session")

    def __init__(
        self, total_timeout_s: float, connect_timeout_s: float, guards: Guards | None = None
    ) -> None:
        self.session: aiohttp.ClientSession | None = None
        # sock_connect, not connect: waiting for a free pooled connection is
        # queueing, bounded by the total; only the TCP handshake has its own limit.
        self._timeout = aiohttp.ClientTimeout(total=total_timeout_s, sock_connect=connect_timeout_s)
        self._total_s = total_timeout_s
        # None when every resilience switch is off: the request path stays as it was.
        on = guards is not None and (guards.breakers_on or guards.retries_on or guards.bulkheads_on)
        self._guards = guards if on else None
        self._policies: dict[str, Policy] = {}

    async def __call__(self, exchange: Exchange) -> Reply:
        session = self.session
        if session is None:
            raise RuntimeError("the gateway's lifespan has not started: the upstream client is not open")
        route = exchange.route
        url = URL(route.origin + upstream_target(exchange.scope), encoded=True)
        read: bytes | None = None
        try:
            if self._guards is None:
                response = await session.request(
                    exchange.method,
                    url,
                    headers=_upstream_headers(exchange),
                    data=exchange.body or None,
                    allow_redirects=False,
                    timeout=self._timeout,
                )
            else:
                response, read = await self._guarded(session, exchange, url)
        except UPSTREAM_ERRORS as exc:
            raise problem_for(route.service, exc) from exc
        headers = filter_response_headers(response.raw_headers)
        status = response.status
        if exchange.method == "HEAD" or status in _BODILESS_STATUS:
            response.release()
            return Reply(status, headers)
        if read is not None:
            return Reply(status, headers, read)  # read (and released) by the guarded attempt
        length = response.content_length
        if length is not None and length <= BUFFER_LIMIT_BYTES:
            try:
                body = await response.read()
            except UPSTREAM_ERRORS as exc:
                raise problem_for(route.service, exc) from exc
            finally:
                response.release()
            return Reply(status, headers, body)
        return Reply(status, headers, stream=_relay(response))

    async def _guarded(self, session: aiohttp.ClientSession, exchange: Exchange, url: URL) -> _Answer:
        service = exchange.route.service
        policy = self._policies.get(service)
        if policy is None:
            policy = self._policy_for(service)
        deadline = Deadline.after(self._total_s)
        base_headers = [pair for pair in _upstream_headers(exchange) if pair[0].lower() != _DEADLINE]
        data = exchange.body or None
        method = exchange.method
        idempotency_key = None
        if method not in _SAFE_METHODS:
            idempotency_key = next(
                (value for name, value in base_headers if name.lower() == "idempotency-key"), None
            )

        async def attempt() -> _Answer:
            headers = [*base_headers, (DEADLINE_HEADER, deadline.to_header())]
            response = await session.request(
                method, url, headers=headers, data=data, allow_redirects=False, timeout=self._timeout
            )
            if response.status != 503:
                return response, None
            # Read now (a refusal is a short problem document) so a retry can drop
            # it and the connection goes back to the pool either way.
            try:
                return response, await response.read()
            finally:
                response.release()

        try:
            return await policy.run(
                attempt,
                idempotent=method in _SAFE_METHODS,
                idempotency_key=idempotency_key,
                deadline=deadline,
            )
        except CallRejected as exc:
            raise _rejection(service, exc) from exc

    def _policy_for(self, service: str) -> Policy:
        assert self._guards is not None  # only called with guards
        policy = self._guards.policy(
            service,
            failure=UPSTREAM_ERRORS,
            failure_result=_failed_answer,
            retry_on=aiohttp.ClientConnectorError,
            retry_on_result=_refused_answer,
            retry_initial_wait_s=_RETRY_INITIAL_WAIT_S,
            bulkhead_calls=self._guards.settings.upstream_bulkhead_calls,
            attempt_timeout_s=None,
        )
        self._policies[service] = policy
        return policy


def _rejection(service: str, exc: CallRejected) -> GatewayProblem:
    if isinstance(exc, CallNotPermitted):
        wait = exc.retry_after if exc.retry_after is not None else float(RETRY_AFTER_S)
        return GatewayProblem(
            503,
            f"the {service} service is failing; calls to it are paused",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
            upstream_error="breaker_open",
        )
    kind = "bulkhead_full" if isinstance(exc, BulkheadFull) else "rejected"
    return GatewayProblem(
        503,
        f"the {service} service is at its concurrency limit",
        headers={"Retry-After": str(RETRY_AFTER_S)},
        upstream_error=kind,
    )


def upstream_target(scope: Scope) -> str:
    """Path and query exactly as the client sent them (the raw path, not the decoded one)."""
    raw_path = scope.get("raw_path")
    if not isinstance(raw_path, bytes) or not raw_path:
        path = scope["path"]
        raw_path = path.encode("utf-8") if isinstance(path, str) else b"/"
    target = raw_path.decode("ascii") if raw_path.isascii() else quote_from_bytes(raw_path, _PASS_THROUGH)
    query = scope.get("query_string")
    if isinstance(query, bytes) and query:
        target += "?" + (query.decode("ascii") if query.isascii() else quote_from_bytes(query, _PASS_THROUGH))
    return target


def _upstream_headers(exchange: Exchange) -> list[tuple[str, str]]:
    head = exchange.head
    proto = exchange.scope.get("scheme", "http")
    host = head.host
    if exchange.peer_trusted:
        # Only a trusted proxy's word on the original scheme and host is taken.
        if head.forwarded_proto in (b"http", b"https"):
            proto = head.forwarded_proto.decode("ascii")
        if head.forwarded_host:
            host = head.forwarded_host
    headers = head.forward.copy()
    headers.append(("x-request-id", exchange.request_id.decode("ascii")))
    headers.append(("x-forwarded-for", exchange.forwarded_for))
    headers.append(("x-forwarded-proto", str(proto)))
    if host:
        headers.append(("x-forwarded-host", host.decode("latin-1")))
    return headers


async def _relay(response: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    finally:
        response.release()
