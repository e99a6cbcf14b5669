"""The gateway's upstream resilience, driven through the ASGI app against an
in-process upstream that counts what reaches it: which requests are retried,
the deadline header, the breaker and its metrics."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bookvault.auth import TokenCodec
from bookvault.config import Settings
from bookvault.gateway.app import GatewayApp
from bookvault.gateway.asgi import Message
from bookvault.patterns.resilience import DEADLINE_HEADER, set_testing
from bookvault.stack.status import breaker_rows, render_breakers

KEY = "k" * 48
CODEC = TokenCodec(KEY)
TIMEOUT_S = 5.0


@dataclasses.dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class Upstream:
    """Answers each request with the next scripted status (then 200), and records it."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.seen: list[web.Request] = []
        self.deadlines: list[str | None] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app, host="127.0.0.1")

    async def _handle(self, request: web.Request) -> web.Response:
        self.seen.append(request)
        self.deadlines.append(request.headers.get(DEADLINE_HEADER))
        status = self.script.pop(0) if self.script else 200
        return web.json_response({"status": status}, status=status)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    await server.server.start_server()
    yield server
    await server.server.close()


@pytest.fixture(autouse=True)
def no_retry_waits() -> Iterator[None]:
    set_testing(True)
    yield
    set_testing(False)


async def gateway(upstream: Upstream, **switches: object) -> GatewayApp:
    port = upstream.server.port
    assert port is not None
    settings = Settings(
        catalog_port=port,
        accounts_port=port,
        borrowing_port=port,
        jwt_secret=KEY,
        upstream_timeout_s=TIMEOUT_S,
        **switches,  # type: ignore[arg-type]
    )
    app = GatewayApp(settings, CODEC)
    await app.startup()
    return app


async def call(
    app: GatewayApp, method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None
) -> Answer:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "scheme": "http",
        "http_version": "1.1",
        "client": ("192.0.2.10", 40000),
        "headers": headers or [],
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    return Answer(
        start["status"],
        {k.decode(): v.decode() for k, v in start["headers"]},
        b"".join(m.get("body", b"") for m in sent[1:]),
    )


BOOK = "/api/catalog/v1/books/1"
AUTH = (b"authorization", f"Bearer {CODEC.sign('7', 'member')}".encode())


async def test_a_get_refused_with_503_is_retried_and_the_client_sees_the_answer(upstream: Upstream) -> None:
    app = await gateway(upstream, retries=True)
    try:
        upstream.script = [503]
        answer = await call(app, "GET", BOOK)
    finally:
        await app.shutdown()
    assert answer.status == 200
    assert len(upstream.seen) == 2


async def test_a_post_is_never_retried_without_an_idempotency_key(upstream: Upstream) -> None:
    app = await gateway(upstream, retries=True)
    try:
        upstream.script = [503]
        answer = await call(app, "POST", "/api/accounts/v1/members/7/payments", [AUTH])
    finally:
        await app.shutdown()
    assert answer.status == 503
    assert len(upstream.seen) == 1


async def test_a_post_with_an_idempotency_key_is_retried(upstream: Upstream) -> None:
    app = await gateway(upstream, retries=True)
    try:
        upstream.script = [503]
        headers = [AUTH, (b"idempotency-key", b"pay-7-1")]
        answer = await call(app, "POST", "/api/accounts/v1/members/7/payments", headers)
    finally:
        await app.shutdown()
    assert answer.status == 200
    assert len(upstream.seen) == 2
    assert [r.headers.get("Idempotency-Key") for r in upstream.seen] == ["pay-7-1", "pay-7-1"]


async def test_a_500_is_not_retried_even_for_a_get(upstream: Upstream) -> None:
    app = await gateway(upstream, retries=True)
    try:
        upstream.script = [500]
        answer = await call(app, "GET", BOOK)
    finally:
        await app.shutdown()
    assert answer.status == 500
    assert len(upstream.seen) == 1


async def test_with_retries_off_a_503_passes_straight_through(upstream: Upstream) -> None:
    app = await gateway(upstream, retries=False, breakers=True)
    try:
        upstream.script = [503]
        answer = await call(app, "GET", BOOK)
    finally:
        await app.shutdown()
    assert answer.status == 503
    assert len(upstream.seen) == 1


async def test_the_deadline_header_is_the_gateways_own_never_the_clients(upstream: Upstream) -> None:
    app = await gateway(upstream, bulkheads=True)
    try:
        await call(app, "GET", BOOK, [(DEADLINE_HEADER.lower().encode(), b"999999999")])
    finally:
        await app.shutdown()
    [deadline] = upstream.deadlines
    assert deadline is not None
    assert 0 < int(deadline) <= TIMEOUT_S * 1000


async def test_with_every_switch_off_the_request_is_sent_as_before(upstream: Upstream) -> None:
    app = await gateway(upstream, breakers=False, retries=False, bulkheads=False)
    try:
        upstream.script = [503]
        answer = await call(app, "GET", BOOK)
    finally:
        await app.shutdown()
    assert answer.status == 503
    assert upstream.deadlines == [None]


async def test_failing_upstream_opens_its_breaker_and_status_reports_it(upstream: Upstream) -> None:
    app = await gateway(upstream, breakers=True, retries=False)
    try:
        upstream.script = [502] * 5
        for _ in range(5):
            assert (await call(app, "GET", BOOK)).status == 502
        refused = await call(app, "GET", BOOK)
        assert (await call(app, "GET", "/api/accounts/v1/members/7", [AUTH])).status == 200
        metrics = await call(app, "GET", "/metrics")
    finally:
        await app.shutdown()
    assert refused.status == 503
    assert int(refused.headers["retry-after"]) >= 1
    assert "paused" in json.loads(refused.body)["detail"]
    assert len(upstream.seen) == 6  # five failures and the accounts call; the refused one never left
    rows = {row["dependency"]: row for row in breaker_rows("gateway", metrics.body.decode())}
    assert rows["catalog"]["state"] == "open"
    assert rows["catalog"]["failure_rate"] == 100.0
    assert rows["catalog"]["not_permitted"] == 1
    assert rows["accounts"]["state"] == "closed"
    table = render_breakers(list(rows.values()))
    assert "catalog" in table
    assert "open" in table
