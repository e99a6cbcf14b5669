"""The pipelined client against the session's real Redis (password required)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from bookvault.config import Settings
from bookvault.patterns.pipelined_redis import PipelinedRedis

pytestmark = pytest.mark.stack


@pytest.fixture
def redis_url(infra: Settings) -> str:
    assert infra.redis_url is not None
    return infra.redis_url


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[PipelinedRedis]:
    pipelined = PipelinedRedis.from_url(redis_url)
    yield pipelined
    await pipelined.aclose()


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Redis]:
    plain = Redis.from_url(redis_url)
    yield plain
    await plain.aclose()


def _key() -> str:
    return f"test:pipelined:{uuid.uuid4().hex}"


async def test_concurrent_callers_each_get_their_own_reply(client: PipelinedRedis) -> None:
    key = _key()
    replies = await asyncio.gather(*(client.execute_command("INCR", key) for _ in range(1000)))
    # Every caller saw a distinct count, so no reply went to the wrong caller.
    assert sorted(replies) == list(range(1, 1001))
    assert await client.execute_command("GET", key) == b"1000"


async def test_scripts_run_by_sha_and_an_unknown_sha_is_noscript(client: PipelinedRedis) -> None:
    sha = await client.execute_command("SCRIPT", "LOAD", "return {tonumber(ARGV[1]) * 2, KEYS[1]}")
    assert await client.execute_command("EVALSHA", sha, 1, "k", 21) == [42, b"k"]
    with pytest.raises(NoScriptError):
        await client.execute_command("EVALSHA", "0" * 40, 0)


async def test_a_server_error_is_raised_and_the_next_call_still_works(client: PipelinedRedis) -> None:
    key = _key()
    await client.execute_command("SET", key, "text")
    with pytest.raises(ResponseError, match="not an integer"):
        await client.execute_command("INCR", key)
    assert await client.execute_command("GET", key) == b"text"


async def test_a_caller_that_gives_up_does_not_shift_the_replies(client: PipelinedRedis) -> None:
    key = _key()
    await client.execute_command("SET", key, "value")
    abandoned = asyncio.ensure_future(client.execute_command("INCRBY", key + ":n", 7))
    await asyncio.sleep(0)  # the command is on the wire
    abandoned.cancel()
    # The abandoned INCRBY's reply (7) must be dropped, not handed to the GET.
    assert await client.execute_command("GET", key) == b"value"
    assert await client.execute_command("GET", key + ":n") == b"7"


async def test_a_killed_connection_fails_pending_calls_and_the_next_call_reconnects(
    client: PipelinedRedis, admin: Redis
) -> None:
    own_id = await client.execute_command("CLIENT", "ID")
    await admin.client_kill_filter(_id=own_id)
    outcomes: list[object] = []
    for _ in range(3):  # the loss is noticed by the first call at the latest
        try:
            outcomes.append(await client.execute_command("PING"))
        except RedisConnectionError as exc:
            outcomes.append(exc)
    assert outcomes[-1] == b"PONG"
    assert await client.execute_command("CLIENT", "ID") != own_id


async def test_a_wrong_password_is_refused_not_hung(redis_url: str) -> None:
    url = redis_url.replace("://:", "://:wrong-", 1) if "://:" in redis_url else redis_url
    assert url != redis_url, "the test stack's Redis should require a password"
    wrong = PipelinedRedis.from_url(url)
    try:
        with pytest.raises(ResponseError, match=r"WRONGPASS|invalid password"):
            await wrong.execute_command("PING")
    finally:
        await wrong.aclose()


async def test_nothing_listening_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nowhere = PipelinedRedis("127.0.0.1", port)
    try:
        with pytest.raises(RedisConnectionError, match="cannot connect"):
            await nowhere.execute_command("PING")
    finally:
        await nowhere.aclose()


async def test_a_redis_that_stops_answering_fails_fast_past_max_pending(redis_url: str, admin: Redis) -> None:
    stalled = PipelinedRedis.from_url(redis_url, max_pending=5)
    try:
        await stalled.execute_command("PING")
        # CLIENT PAUSE holds every client's commands: replies stop coming.
        await admin.client_pause(2000, all=True)
        try:
            held = [asyncio.ensure_future(stalled.execute_command("PING")) for _ in range(5)]
            await asyncio.sleep(0)
            with pytest.raises(RedisConnectionError, match="unanswered"):
                await stalled.execute_command("PING")
        finally:
            await admin.client_unpause()
        assert await asyncio.gather(*held) == [b"PONG"] * 5
    finally:
        await stalled.aclose()
