"""The request pipeline's vocabulary: an exchange flows through stages to the
proxy and comes back as a reply.

A stage is `async (exchange, call_next) -> Reply`: it may answer itself (auth,
a limiter, a cache hit), change the exchange before calling on, or change the
reply on the way back (caching, compression). The app composes the stages once
at startup, so a request pays one coroutine call per stage and nothing more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from bookvault.auth import Principal
from bookvault.gateway.asgi import Scope
from bookvault.gateway.headers import InboundHead
from bookvault.gateway.routing import Route
from bookvault.web.problems import PROBLEM_CONTENT_TYPE, problem_body

if TYPE_CHECKING:  # body.py builds on this module; the annotation alone needs the name
    from bookvault.gateway.body import RequestBody

__all__ = ["Exchange", "GatewayProblem", "Handler", "Reply", "Stage", "compose", "problem_reply"]

_PROBLEM_TYPE = (b"content-type", PROBLEM_CONTENT_TYPE.encode("ascii"))


@dataclasses.dataclass(slots=True)
class Exchange:
    scope: Scope
    request_body: RequestBody
    method: str
    path: str  # decoded, as routed; the upstream gets the raw path
    route: Route
    head: InboundHead
    request_id: bytes
    client: str
    forwarded_for: str
    peer_trusted: bool
    principal: Principal | None = None
    body: bytes = b""  # filled by the BodyReader stage


@dataclasses.dataclass(slots=True)
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    # More body after `body`, for responses too big to hold. Whoever sends the
    # reply must close it (`aclose`), which also releases the upstream connection.
    stream: AsyncGenerator[bytes, None] | None = None
    # Set when the upstream failed, for metrics: "timeout", "connect", ...
    upstream_error: str | None = None


Handler = Callable[[Exchange], Awaitable[Reply]]


class Stage(Protocol):
    async def __call__(self, exchange: Exchange, call_next: Handler) -> Reply: ...


def compose(stages: Sequence[Stage], endpoint: Handler) -> Handler:
    """One handler running `stages` in order, then `endpoint`."""
    handler = endpoint
    for stage in reversed(stages):
        handler = _bind(stage, handler)
    return handler


def _bind(stage: Stage, call_next: Handler) -> Handler:
    async def handler(exchange: Exchange) -> Reply:
        return await stage(exchange, call_next)

    return handler


class GatewayProblem(Exception):
    """Raised by a stage for an answer the gateway gives itself."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        upstream_error: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.upstream_error = upstream_error

    def reply(self) -> Reply:
        reply = problem_reply(self.status, self.detail, self.headers)
        reply.upstream_error = self.upstream_error
        return reply


def problem_reply(status: int, detail: str, headers: Mapping[str, str] | None = None) -> Reply:
    body = problem_body(status, detail)
    response_headers = [_PROBLEM_TYPE, (b"content-length", str(len(body)).encode("ascii"))]
    if headers:
        response_headers.extend(
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        )
    return Reply(status, response_headers, body)
