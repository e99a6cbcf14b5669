"""The gateway app's auth endpoints and fail-closed mode, driven directly, where the
answer does not depend on Redis (no Redis configured, or Redis never reached).
Revoking for real, across processes, is in tests/integration/gateway."""

from __future__ import annotations

import json

from bookvault.auth import Role, TokenCodec
from bookvault.config import Settings
from bookvault.gateway.app import GatewayApp
from bookvault.gateway.asgi import Message
from bookvault.gateway.exchange import Exchange, Handler, Reply
from bookvault.gateway.revocations import revocation_list

KEY = "k" * 48
CODEC = TokenCodec(KEY)


async def call(
    app: GatewayApp, method: str, path: str, token: str | None = None, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    if body:
        headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "scheme": "http",
        "http_version": "1.1",
        "client": ("192.0.2.10", 40000),
        "headers": headers,
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    return (
        start["status"],
        {k.decode(): v.decode() for k, v in start["headers"]},
        b"".join(m.get("body", b"") for m in sent[1:]),
    )


def token(sub: str, role: Role = "member") -> str:
    return CODEC.sign(sub, role)


class Canned:
    async def __call__(self, exchange: Exchange, call_next: Handler) -> Reply:
        return Reply(200, [(b"content-length", b"2")], b"ok")


async def test_without_redis_nothing_can_be_revoked_and_the_gateway_says_so() -> None:
    app = GatewayApp(Settings(jwt_secret=KEY), CODEC)
    status, headers, body = await call(app, "POST", "/api/auth/v1/logout", token("5"))
    assert status == 503
    assert headers["content-type"] == "application/problem+json"
    assert "no Redis" in json.loads(body)["detail"]


async def test_logout_needs_a_valid_token() -> None:
    app = GatewayApp(Settings(jwt_secret=KEY), CODEC)
    assert (await call(app, "POST", "/api/auth/v1/logout"))[0] == 401
    assert (await call(app, "POST", "/api/auth/v1/logout", token("5") + "x"))[0] == 401


async def test_a_body_that_is_not_json_is_a_400() -> None:
    app = GatewayApp(Settings(jwt_secret=KEY), CODEC)
    status, _, body = await call(app, "POST", "/api/auth/v1/revocations", token("1", "admin"), b"{nope")
    assert status == 400
    assert json.loads(body)["status"] == 400


async def test_fail_closed_answers_authenticated_requests_503_until_the_list_is_current() -> None:
    # A Redis nobody listens on, and the list never started: it is not current.
    settings = Settings(jwt_secret=KEY, redis_url="redis://127.0.0.1:9/0", revocation_fail_closed=True)
    revocations = revocation_list(settings)
    assert revocations is not None
    codec = TokenCodec(KEY, revocations=revocations)
    app = GatewayApp(settings, codec, extra_stages=(Canned(),), revocations=revocations)

    status, headers, body = await call(app, "GET", "/api/catalog/v1/books/1", token("5"))
    assert status == 503
    assert headers["retry-after"] == "1"
    assert "revocations" in json.loads(body)["detail"]
    # Anonymous reads do not depend on revocations.
    assert (await call(app, "GET", "/api/catalog/v1/books/1"))[0] == 200
