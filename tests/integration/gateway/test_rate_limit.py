"""The rate limiter in real gateway processes (granian) sharing a real Redis.

Every gateway here limits against a redis-server of this module's own, so the
counts never mix with other tests' traffic, and the outage test can kill it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict
from tests.integration.gateway.conftest import (
    EchoUpstream,
    Gateway,
    gateway_settings,
)
from tests.support.redis_server import OwnRedis, running_redis

from bookvault.patterns.ratelimit import parse_ratelimit, parse_ratelimit_policy
from bookvault.patterns.ratelimit.headers import QUOTA_EXCEEDED

CONCURRENCY = 64
# The sharing tests measure how exactly Redis holds one limit, not what happens when it is
# slow: a timeout this long keeps a busy test machine from sending decisions to the local
# fallback (the outage test covers that path).
PATIENT_S = 2.0


@pytest.fixture(scope="module")
def redis_server() -> Iterator[OwnRedis]:
    with running_redis() as server:
        yield server


@contextlib.asynccontextmanager
async def gateways(
    upstream: EchoUpstream, dead_port: int, workdir: Path, count: int, **overrides: Any
) -> AsyncIterator[list[Gateway]]:
    each = [gateway_settings(upstream, dead_port, rate_limit=True, **overrides) for _ in range(count)]
    async with Gateway.running("gateway", each, workdir) as started:
        yield started


@pytest.fixture(scope="module")
async def seed_pair(
    upstream: EchoUpstream, dead_port: int, workdir: Path, redis_server: OwnRedis
) -> AsyncIterator[list[Gateway]]:
    """Two gateways on the seed's defaults (100/s, burst 200); the second trusts loopback proxies."""
    async with (
        gateways(
            upstream, dead_port, workdir, 1, redis_url=redis_server.url, rate_limit_timeout_s=PATIENT_S
        ) as [plain],
        gateways(
            upstream,
            dead_port,
            workdir,
            1,
            redis_url=redis_server.url,
            rate_limit_timeout_s=PATIENT_S,
            trusted_proxies=("127.0.0.0/8",),
        ) as [trusting],
    ):
        yield [plain, trusting]


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=2 * CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
def member() -> str:
    return str(secrets.randbelow(10**9) + 1)


class Answer:
    def __init__(self, status: int, headers: CIMultiDict[str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


async def burst(
    client: aiohttp.ClientSession,
    targets: list[Gateway],
    n: int,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    vary_forwarded_for: bool = False,
    method: str = "GET",
) -> tuple[list[Answer], float]:
    """`n` requests spread over `targets`, CONCURRENCY at a time; the answers and the seconds it took."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> Answer:
        sent = dict(headers or {})
        if vary_forwarded_for:
            sent["X-Forwarded-For"] = f"198.51.{i // 250 % 250}.{i % 250 + 1}"
        target = targets[i % len(targets)]
        async with gate, client.request(method, target.url + path, headers=sent) as resp:
            return Answer(resp.status, CIMultiDict(resp.headers), await resp.read())

    started = time.monotonic()
    answers = await asyncio.gather(*(one(i) for i in range(n)))
    return list(answers), time.monotonic() - started


def check_refusal(answer: Answer, policy: str, quota: int, window: int) -> None:
    """A 429 as the draft describes it, read with the library's parsers."""
    assert answer.status == 429
    assert parse_ratelimit_policy(answer.headers["RateLimit-Policy"]) == {policy: {"q": quota, "w": window}}
    remaining = parse_ratelimit(answer.headers["RateLimit"])[policy]
    assert remaining["r"] == 0
    retry_after = int(answer.headers["Retry-After"])
    assert retry_after >= 1
    assert remaining["t"] == retry_after  # the effective window ends when a retry may pass
    assert answer.headers["Content-Type"] == "application/problem+json"
    problem = json.loads(answer.body)
    assert problem["type"] == QUOTA_EXCEEDED
    assert problem["status"] == 429
    assert problem["violated-policies"] == [policy]


async def test_a_members_burst_of_1000_admits_the_burst_across_gateways(
    seed_pair: list[Gateway], client: aiohttp.ClientSession, member: str
) -> None:
    answers, elapsed = await burst(
        client, seed_pair, 1000, "/api/catalog/v1/books/burst", headers=Gateway.bearer(member)
    )
    admitted = [a for a in answers if a.status == 200]
    refused = [a for a in answers if a.status != 200]
    # 200 at once, plus whatever 100/s refilled while the burst was on its way (a second's worth at most
    # when it took under a second).
    assert 200 <= len(admitted) <= 200 + 100 * max(1.0, elapsed)
    assert refused
    for answer in refused:
        check_refusal(answer, "catalog", 200, 2)
    for answer in admitted:
        assert parse_ratelimit_policy(answer.headers["RateLimit-Policy"]) == {"catalog": {"q": 200, "w": 2}}
        remaining = parse_ratelimit(answer.headers["RateLimit"])["catalog"]["r"]
        assert isinstance(remaining, int)
        assert 0 <= remaining < 200


async def test_two_gateways_share_one_limit_within_two_percent(
    upstream: EchoUpstream,
    dead_port: int,
    workdir: Path,
    redis_server: OwnRedis,
    client: aiohttp.ClientSession,
    member: str,
) -> None:
    # A burst of 1000 refilling at 1/s: the configured total is 1000 plus a token per second.
    async with gateways(
        upstream,
        dead_port,
        workdir,
        2,
        redis_url=redis_server.url,
        rate_limit_timeout_s=PATIENT_S,
        rate_limit_rate=1.0,
        rate_limit_burst=1000,
    ) as pair:
        answers, elapsed = await burst(
            client, pair, 2500, "/api/catalog/v1/books/shared", headers=Gateway.bearer(member)
        )
    admitted = sum(a.status == 200 for a in answers)
    configured = 1000 + elapsed * 1.0
    assert abs(admitted - configured) <= 0.02 * configured
    assert {a.status for a in answers} == {200, 429}


async def test_rotating_forwarded_for_does_not_escape_the_limit(
    seed_pair: list[Gateway], client: aiohttp.ClientSession
) -> None:
    plain, trusting = seed_pair
    # Not behind a trusted proxy: X-Forwarded-For is ignored, the socket address is the client.
    answers, elapsed = await burst(client, [plain], 500, "/api/catalog/v1/books/xff", vary_forwarded_for=True)
    admitted = sum(a.status == 200 for a in answers)
    assert admitted <= 200 + 100 * max(1.0, elapsed)
    assert any(a.status == 429 for a in answers)
    # Behind a trusted proxy (loopback), which appends the real client: whatever the
    # client claims left of it changes nothing.
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> int:
        claimed = f"198.51.100.{i % 250 + 1}, 203.0.113.7"
        async with (
            gate,
            client.get(trusting.url + "/api/catalog/v1/books/xff", headers={"X-Forwarded-For": claimed}) as r,
        ):
            return r.status

    started = time.monotonic()
    statuses = await asyncio.gather(*(one(i) for i in range(500)))
    elapsed = time.monotonic() - started
    assert statuses.count(200) <= 200 + 100 * max(1.0, elapsed)
    assert 429 in statuses


async def test_with_redis_gone_the_documented_policy_holds_and_the_gateway_stays_up(
    upstream: EchoUpstream, dead_port: int, workdir: Path, client: aiohttp.ClientSession
) -> None:
    redis = OwnRedis()
    redis.start()
    try:
        async with gateways(
            upstream,
            dead_port,
            workdir,
            1,
            redis_url=redis.url,
            rate_limit_rate=1.0,
            rate_limit_burst=5,
            rate_limit_fail_closed=("payments",),
        ) as [gateway]:
            before, _ = await burst(
                client, [gateway], 3, "/api/catalog/v1/books/up", headers=Gateway.bearer("7")
            )
            assert [a.status for a in before] == [200, 200, 200]
            redis.kill()
            # Fail open to a local limiter of the same size: still limited, never an error.
            during, _ = await burst(
                client, [gateway], 8, "/api/catalog/v1/books/down", headers=Gateway.bearer("8")
            )
            assert sorted(a.status for a in during) == [200] * 5 + [429] * 3
            for answer in during:
                assert "RateLimit" in answer.headers
            # Payments fail closed: refused with 503 and a hint when to retry.
            async with client.post(
                gateway.url + "/api/accounts/v1/members/7/payments", json={}, headers=Gateway.bearer("7")
            ) as resp:
                assert resp.status == 503
                assert resp.headers["Content-Type"] == "application/problem+json"
                assert int(resp.headers["Retry-After"]) >= 1
            async with client.get(gateway.url + "/healthz") as resp:
                assert resp.status == 200
            assert gateway.process.poll() is None
            assert "Traceback" not in gateway.log.read_text()
    finally:
        redis.kill()
