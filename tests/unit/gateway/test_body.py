import asyncio
from collections.abc import Awaitable, Callable

import pytest

from bookvault.gateway.asgi import Message
from bookvault.gateway.body import DISCARD_LIMIT_BYTES, BodyReader, ClientDisconnected, RequestBody
from bookvault.gateway.exchange import Exchange, GatewayProblem, Reply
from bookvault.gateway.headers import InboundHead
from bookvault.gateway.routing import Route

LIMIT = 100


def messages(*items: Message) -> tuple[Callable[[], Awaitable[Message]], list[Message]]:
    """A receive callable over `items`, and the list of those it handed out."""
    pending = list(items)
    handed: list[Message] = []

    async def receive() -> Message:
        message = pending.pop(0)
        handed.append(message)
        return message

    return receive, handed


def chunk(body: bytes, more: bool = True) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


def body_of(
    receive: Callable[[], Awaitable[Message]],
    length: bytes | None = None,
    chunked: bool = False,
    expects_continue: bool = False,
    http_version: str = "1.1",
) -> RequestBody:
    head = InboundHead(forward=[], content_length=length, chunked=chunked, expects_continue=expects_continue)
    return RequestBody(receive, head, http_version)


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    receive, handed = messages(chunk(b"x" * 101, more=False))
    with pytest.raises(GatewayProblem) as caught:
        await body_of(receive, b"101").read(LIMIT)
    assert caught.value.status == 413
    assert handed == []


async def test_an_undeclared_body_is_counted_as_it_arrives() -> None:
    receive, handed = messages(chunk(b"x" * 60), chunk(b"x" * 60), chunk(b"x" * 60, more=False))
    with pytest.raises(GatewayProblem) as caught:
        await body_of(receive, chunked=True).read(LIMIT)
    assert caught.value.status == 413
    assert len(handed) == 2  # stopped as soon as the limit was passed


async def test_a_body_is_joined_from_its_chunks() -> None:
    receive, _ = messages(chunk(b'{"a":'), chunk(b""), chunk(b"1}", more=False))
    body = body_of(receive, chunked=True)
    assert await body.read(LIMIT) == b'{"a":1}'
    assert body.finished


async def test_exactly_the_limit_is_allowed() -> None:
    receive, _ = messages(chunk(b"x" * LIMIT, more=False))
    assert await body_of(receive, b"100").read(LIMIT) == b"x" * LIMIT


async def test_no_length_and_no_chunking_means_no_body_and_no_waiting() -> None:
    receive, handed = messages()
    for length in (None, b"0"):
        body = body_of(receive, length)
        assert body.finished
        assert await body.read(LIMIT) == b""
    assert handed == []


async def test_http2_may_carry_a_body_without_declaring_it() -> None:
    receive, _ = messages(chunk(b"{}", more=False))
    assert await body_of(receive, http_version="2").read(LIMIT) == b"{}"


@pytest.mark.parametrize("declared", [b"-1", b"ten", b"1e3", b""])
async def test_a_malformed_content_length_is_400(declared: bytes) -> None:
    receive, _ = messages()
    with pytest.raises(GatewayProblem) as caught:
        await body_of(receive, declared).read(LIMIT)
    assert caught.value.status == 400


async def test_a_client_that_leaves_mid_body_is_noticed() -> None:
    receive, _ = messages(chunk(b"x"), {"type": "http.disconnect"})
    with pytest.raises(ClientDisconnected):
        await body_of(receive, b"50").read(LIMIT)


async def test_a_refused_body_is_drained_so_the_client_can_read_the_answer() -> None:
    receive, handed = messages(chunk(b"x" * 60), chunk(b"x" * 60), chunk(b"x" * 60, more=False))
    body = body_of(receive, b"180")
    with pytest.raises(GatewayProblem):
        await body.read(LIMIT)
    await body.discard_rest(timeout_s=5)
    assert body.finished
    assert len(handed) == 3


async def test_a_client_waiting_for_100_continue_is_not_asked_for_its_body() -> None:
    receive, handed = messages(chunk(b"x" * 180, more=False))
    body = body_of(receive, b"180", expects_continue=True)
    await body.discard_rest(timeout_s=5)
    assert handed == []


async def test_a_huge_declared_body_is_not_drained() -> None:
    receive, handed = messages(chunk(b"x", more=True))
    body = body_of(receive, str(DISCARD_LIMIT_BYTES + 1).encode())
    await body.discard_rest(timeout_s=5)
    assert handed == []


async def test_draining_gives_up_when_the_client_leaves() -> None:
    receive, _ = messages(chunk(b"x"), {"type": "http.disconnect"})
    body = body_of(receive, b"50")
    await body.discard_rest(timeout_s=5)  # does not raise
    assert body.finished


async def test_a_body_that_never_arrives_is_408() -> None:
    never = asyncio.Event()

    async def receive() -> Message:
        await never.wait()
        raise AssertionError("unreachable")

    exchange = Exchange(
        scope={},
        request_body=body_of(receive, b"10"),
        method="POST",
        path="/api/catalog/v1/books",
        route=Route("catalog", "/api/catalog/v1", "http://127.0.0.1:1", anonymous_reads=True),
        head=InboundHead(forward=[]),
        request_id=b"r",
        client="192.0.2.1",
        forwarded_for="192.0.2.1",
        peer_trusted=False,
    )

    async def unreachable(_: Exchange) -> Reply:
        raise AssertionError("the upstream must not be called")

    with pytest.raises(GatewayProblem) as caught:
        await BodyReader(LIMIT, timeout_s=0.01)(exchange, unreachable)
    assert caught.value.status == 408
