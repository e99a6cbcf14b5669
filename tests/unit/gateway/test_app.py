"""The ASGI app driven directly: its own endpoints, the pipeline order, the lifespan.
Proxying to real upstreams is covered in tests/integration/gateway."""

import dataclasses
import json
from typing import Any

import aiohttp
import pytest

from bookvault.auth import Principal, Role, TokenCodec
from bookvault.config import Settings
from bookvault.gateway.app import GatewayApp
from bookvault.gateway.asgi import Message
from bookvault.gateway.exchange import Exchange, Handler, Reply, Stage

KEY = "k" * 48
CODEC = TokenCodec(KEY)


@dataclasses.dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.body)
        return data


async def call(
    app: GatewayApp,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    scope_type: str = "http",
) -> Answer:
    scope = {
        "type": scope_type,
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "scheme": "http",
        "http_version": "1.1",
        "client": ("192.0.2.10", 40000),
        "headers": [*(headers or []), *([(b"content-length", str(len(body)).encode())] if body else [])],
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if scope_type != "http":
        return Answer(0, {}, json.dumps(sent).encode())
    start = sent[0]
    return Answer(
        start["status"],
        {k.decode(): v.decode() for k, v in start["headers"]},
        b"".join(m.get("body", b"") for m in sent[1:]),
    )


class Canned:
    """A stage that answers itself and remembers what it saw, like a cache hit would."""

    def __init__(self) -> None:
        self.seen: list[Exchange] = []

    async def __call__(self, exchange: Exchange, call_next: Handler) -> Reply:
        self.seen.append(exchange)
        return Reply(200, [(b"content-type", b"text/plain"), (b"content-length", b"6")], b"canned")


class Exploding:
    async def __call__(self, exchange: Exchange, call_next: Handler) -> Reply:
        raise RuntimeError("secret internals")


def make_app(*stages: Stage, **overrides: Any) -> GatewayApp:
    settings = dataclasses.replace(Settings(jwt_secret=KEY), **overrides)
    return GatewayApp(settings, CODEC, extra_stages=stages)


def bearer(sub: str, role: Role = "member") -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {CODEC.sign(sub, role)}".encode())]


async def test_health_is_plain_and_carries_a_request_id() -> None:
    answer = await call(make_app(), "GET", "/healthz")
    assert (answer.status, answer.body) == (200, b"ok")
    assert len(answer.headers["x-request-id"]) == 32


async def test_own_endpoints_answer_reads_only() -> None:
    answer = await call(make_app(), "POST", "/healthz")
    assert answer.status == 405
    assert answer.headers["allow"] == "GET, HEAD"
    assert answer.headers["content-type"] == "application/problem+json"


async def test_head_sends_headers_without_a_body() -> None:
    answer = await call(make_app(), "HEAD", "/healthz")
    assert (answer.status, answer.body, answer.headers["content-length"]) == (200, b"", "2")


async def test_unknown_paths_are_404_problems() -> None:
    answer = await call(make_app(), "GET", "/internal/loans", [(b"x-request-id", b"req-1")])
    assert answer.status == 404
    assert answer.json()["status"] == 404
    assert answer.headers["x-request-id"] == "req-1"


async def test_stages_run_after_auth_and_body_reading() -> None:
    canned = Canned()
    app = make_app(canned)
    answer = await call(app, "POST", "/api/borrowing/v1/loans", bearer("7"), body=b'{"book_id": 1}')
    assert (answer.status, answer.body) == (200, b"canned")
    exchange = canned.seen[0]
    assert exchange.principal == Principal("7", "member")
    assert exchange.body == b'{"book_id": 1}'
    assert exchange.client == "192.0.2.10"


async def test_refused_requests_never_reach_later_stages() -> None:
    canned = Canned()
    app = make_app(canned, max_body_bytes=10)
    assert (await call(app, "POST", "/api/catalog/v1/books", body=b"{}")).status == 401
    assert (await call(app, "GET", "/api/accounts/v1/members/8/balance", bearer("7"))).status == 403
    assert (await call(app, "POST", "/api/catalog/v1/books", bearer("1", "admin"), b"x" * 11)).status == 413
    assert (await call(app, "GET", "/api/catalog/v1/a/../../../internal")).status == 400
    assert canned.seen == []


async def test_an_unexpected_error_is_a_500_problem_without_internals() -> None:
    answer = await call(make_app(Exploding()), "GET", "/api/catalog/v1/books/1")
    assert answer.status == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert b"secret internals" not in answer.body
    assert b"Traceback" not in answer.body


async def test_metrics_label_routes_never_raw_paths() -> None:
    app = make_app(Canned())
    for book in range(3):
        await call(app, "GET", f"/api/catalog/v1/books/{book}")
    await call(app, "GET", "/nowhere/else")
    text = (await call(app, "GET", "/metrics")).body.decode()
    assert 'bookvault_http_requests_total{method="GET",route="catalog",status="200"} 3.0' in text
    assert 'route="unmatched",status="404"' in text
    assert "/books/" not in text
    assert "/nowhere" not in text


async def test_made_up_methods_share_one_label() -> None:
    app = make_app(Canned())
    for method in ("BREW", "WHEN"):
        await call(app, method, "/api/catalog/v1/books", bearer("1", "admin"))
    text = (await call(app, "GET", "/metrics")).body.decode()
    assert 'method="OTHER",route="catalog",status="200"} 2.0' in text


async def test_readiness_before_startup_is_503() -> None:
    answer = await call(make_app(), "GET", "/readyz")
    assert answer.status == 503


async def test_lifespan_opens_and_closes_the_upstream_client() -> None:
    app = make_app()
    inbox: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Message] = []
    session_during_startup: list[aiohttp.ClientSession | None] = []

    async def receive() -> Message:
        return inbox.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "lifespan.startup.complete":
            session_during_startup.append(app._proxy.session)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    session = session_during_startup[0]
    assert session is not None
    assert session.closed
    assert app._proxy.session is None


async def test_websockets_are_refused() -> None:
    answer = await call(make_app(), "GET", "/api/catalog/v1/books", scope_type="websocket")
    assert json.loads(answer.body) == [{"type": "websocket.close", "code": 1008}]


@pytest.mark.parametrize("trusted", [(), ("192.0.2.0/24",)])
async def test_client_identity_uses_trusted_proxies_only(trusted: tuple[str, ...]) -> None:
    canned = Canned()
    app = make_app(canned, trusted_proxies=trusted)
    await call(app, "GET", "/api/catalog/v1/books", [(b"x-forwarded-for", b"203.0.113.5")])
    assert canned.seen[0].client == ("203.0.113.5" if trusted else "192.0.2.10")
