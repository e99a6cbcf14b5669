"""The services' deadline middleware: a caller's `X-Request-Deadline-Ms` bounds the request."""

from __future__ import annotations

import json

from starlette.types import Message, Receive, Scope, Send

from bookvault.patterns.resilience import DEADLINE_HEADER, Deadline, current_deadline
from bookvault.web.deadline import DeadlineMiddleware

HEADER = DEADLINE_HEADER.lower().encode()


class Inner:
    def __init__(self) -> None:
        self.deadlines: list[Deadline | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.deadlines.append(current_deadline())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app: DeadlineMiddleware, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": "/", "headers": headers}, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def test_without_the_header_the_request_has_no_deadline() -> None:
    inner = Inner()
    assert await call(DeadlineMiddleware(inner), []) == (200, b"ok")
    assert inner.deadlines == [None]


async def test_the_callers_budget_becomes_the_current_deadline() -> None:
    inner = Inner()
    status, _ = await call(DeadlineMiddleware(inner), [(HEADER, b"1500")])
    assert status == 200
    [deadline] = inner.deadlines
    assert deadline is not None
    assert 0 < deadline.remaining() <= 1.5


async def test_a_spent_budget_is_answered_504_without_running_the_handler() -> None:
    inner = Inner()
    status, body = await call(DeadlineMiddleware(inner), [(HEADER, b"0")])
    assert status == 504
    assert json.loads(body)["status"] == 504
    assert inner.deadlines == []


async def test_a_malformed_budget_is_a_400_problem() -> None:
    inner = Inner()
    status, body = await call(DeadlineMiddleware(inner), [(HEADER, b"soon")])
    assert status == 400
    assert DEADLINE_HEADER in json.loads(body)["detail"]
    assert inner.deadlines == []
