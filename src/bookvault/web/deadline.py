"""Requests carry their caller's deadline; a service never works past it.

The gateway sends `X-Request-Deadline-Ms` (`DEADLINE_HEADER`): the milliseconds its
client is still willing to wait. This middleware makes that deadline current for the
request (so retries, bulkhead waits and calls to other services see it, via
`use_deadline`) and cancels the handler when it passes, answering 504 as a problem
document. A request without the header has no deadline here; a malformed one is 400.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bookvault.patterns.resilience import DEADLINE_HEADER, Deadline, DeadlineExceeded, timeout, use_deadline
from bookvault.web.problems import PROBLEM_CONTENT_TYPE, problem_body

__all__ = ["DeadlineMiddleware"]

_HEADER = DEADLINE_HEADER.lower().encode("ascii")
# A service never holds a request longer than this, whatever a caller asks for.
MAX_DEADLINE_S = 300.0


class DeadlineMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = None
        for name, value in scope["headers"]:
            if name == _HEADER:
                raw = value
                break
        if raw is None:
            await self.app(scope, receive, send)
            return
        try:
            deadline = Deadline.from_header(raw.decode("latin-1"), max_seconds=MAX_DEADLINE_S)
        except ValueError as exc:
            await _problem(send, 400, str(exc))
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            with use_deadline(deadline):
                async with timeout(deadline):
                    await self.app(scope, receive, tracking_send)
        except DeadlineExceeded:
            if not started:
                await _problem(send, 504, "the request's deadline passed before it was answered")
            # Otherwise the status line is gone: ending without the final body message
            # makes the server cut the response short, the only honest signal left.


async def _problem(send: Send, status: int, detail: str) -> None:
    body = problem_body(status, detail)
    headers: list[Any] = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode("ascii")),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
