"""The limiter stage on its own, in process memory, with a fake clock.

Redis, several gateway processes and real HTTP are in
tests/integration/gateway/test_rate_limit.py.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from bookvault.auth import Principal
from bookvault.config import ConfigError, Settings, load_settings
from bookvault.gateway.exchange import Exchange, Reply
from bookvault.gateway.headers import InboundHead
from bookvault.gateway.limit_policies import client_key, is_payment
from bookvault.gateway.pipeline import pattern_stages
from bookvault.gateway.rate_limit import RateLimitStage
from bookvault.gateway.routing import RouteTable
from bookvault.patterns.clock import FakeClock
from bookvault.patterns.ratelimit import parse_ratelimit, parse_ratelimit_policy
from bookvault.patterns.ratelimit.headers import QUOTA_EXCEEDED

ROUTES = {route.service: route for route in RouteTable.from_settings(Settings()).routes}
SMALL = Settings(
    rate_limit_rate=1.0, rate_limit_burst=3, rate_limit_payments_rate=1.0, rate_limit_payments_burst=2
)


def exchange(
    path: str = "/api/catalog/v1/books",
    method: str = "GET",
    client: str = "192.0.2.1",
    principal: Principal | None = None,
) -> Exchange:
    service = path.split("/")[2]
    return Exchange(
        scope={},
        request_body=cast(Any, None),
        method=method,
        path=path,
        route=ROUTES[service],
        head=InboundHead(forward=[]),
        request_id=b"test",
        client=client,
        forwarded_for=client,
        peer_trusted=False,
        principal=principal,
    )


async def upstream(_: Exchange) -> Reply:
    return Reply(200, [(b"content-type", b"text/plain")], b"ok")


def header(reply: Reply, name: str) -> list[str]:
    return [v.decode("latin-1") for k, v in reply.headers if k.decode("latin-1").lower() == name.lower()]


async def send(stage: RateLimitStage, n: int, **kwargs: Any) -> list[Reply]:
    return [await stage(exchange(**kwargs), upstream) for _ in range(n)]


async def test_admits_the_burst_then_refuses_with_the_drafts_answer() -> None:
    clock = FakeClock()
    stage = RateLimitStage(SMALL, clock=clock)
    replies = await send(stage, 5)
    assert [r.status for r in replies] == [200, 200, 200, 429, 429]
    first, refused = replies[0], replies[3]
    assert parse_ratelimit_policy(header(first, "RateLimit-Policy")[0]) == {"catalog": {"q": 3, "w": 3}}
    assert parse_ratelimit(header(first, "RateLimit")[0])["catalog"]["r"] == 2
    assert parse_ratelimit(header(refused, "RateLimit")[0]) == {"catalog": {"r": 0, "t": 1}}
    assert header(refused, "Retry-After") == ["1"]
    assert header(refused, "Content-Type") == ["application/problem+json"]
    body = json.loads(refused.body)
    assert body["type"] == QUOTA_EXCEEDED
    assert body["status"] == 429
    assert body["violated-policies"] == ["catalog"]
    clock.advance(1.0)  # one token back
    assert [r.status for r in await send(stage, 2)] == [200, 429]


async def test_members_are_limited_by_subject_and_anonymous_callers_by_address() -> None:
    stage = RateLimitStage(SMALL, clock=FakeClock())
    member = Principal("42", "member")
    assert [r.status for r in await send(stage, 4, principal=member, client="192.0.2.1")][-1] == 429
    # The same member from another address is the same caller...
    assert (await send(stage, 1, principal=member, client="198.51.100.9"))[0].status == 429
    # ...while an anonymous caller at the first address has a quota of its own.
    assert [r.status for r in await send(stage, 3, client="192.0.2.1")] == [200, 200, 200]


async def test_each_route_and_payments_have_their_own_policy() -> None:
    stage = RateLimitStage(SMALL, clock=FakeClock())
    member = Principal("42", "member")
    await send(stage, 3, principal=member)
    borrowing = await send(stage, 1, principal=member, path="/api/borrowing/v1/members/42/loans")
    assert borrowing[0].status == 200
    assert "borrowing" in parse_ratelimit_policy(header(borrowing[0], "RateLimit-Policy")[0])
    pay = "/api/accounts/v1/members/42/payments"
    replies = await send(stage, 3, principal=member, path=pay, method="POST")
    assert [r.status for r in replies] == [200, 200, 429]
    assert parse_ratelimit_policy(header(replies[0], "RateLimit-Policy")[0]) == {"payments": {"q": 2, "w": 2}}
    # Reading payments is not paying: the accounts route's policy applies.
    assert (await send(stage, 1, principal=member, path=pay))[0].status == 200


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/api/accounts/v1/members/7/payments", True),
        ("POST", "/api/accounts/v1/members/7/charges", True),
        ("GET", "/api/accounts/v1/members/7/payments", False),
        ("POST", "/api/accounts/v1/members//payments", False),
        ("POST", "/api/accounts/v1/members/7/payments/extra", False),
        ("POST", "/api/accounts/v1/members/7", False),
    ],
)
def test_payment_routes(method: str, path: str, expected: bool) -> None:
    assert is_payment(method, path) is expected


async def test_an_empty_key_is_refused_with_the_configured_status() -> None:
    stage = RateLimitStage(dataclasses.replace(SMALL, rate_limit_empty_key_status=401), clock=FakeClock())
    [reply] = await send(stage, 1, client="")
    assert reply.status == 401
    assert client_key(exchange(principal=Principal("", "member"))) == ""
    text = generate_latest(registry_with(stage)).decode()
    assert 'bookvault_ratelimit_decisions_total{decision="empty_key",policy="catalog"} 1.0' in text


async def test_shadow_mode_lets_everything_through_and_counts_what_it_would_refuse() -> None:
    stage = RateLimitStage(dataclasses.replace(SMALL, rate_limit_shadow=True), clock=FakeClock())
    replies = await send(stage, 5)
    assert [r.status for r in replies] == [200] * 5
    assert parse_ratelimit(header(replies[-1], "RateLimit")[0])["catalog"]["r"] == 0
    text = generate_latest(registry_with(stage)).decode()
    assert 'bookvault_ratelimit_decisions_total{decision="allowed",policy="catalog"} 3.0' in text
    assert 'bookvault_ratelimit_decisions_total{decision="shadow_denied",policy="catalog"} 2.0' in text


async def test_metrics_count_decisions_per_policy() -> None:
    stage = RateLimitStage(SMALL, clock=FakeClock())
    await send(stage, 5)
    text = generate_latest(registry_with(stage)).decode()
    assert 'bookvault_ratelimit_decisions_total{decision="allowed",policy="catalog"} 3.0' in text
    assert 'bookvault_ratelimit_decisions_total{decision="denied",policy="catalog"} 2.0' in text
    assert 'bookvault_ratelimit_decisions_total{decision="denied",policy="payments"} 0.0' in text
    assert 'bookvault_ratelimit_storage_errors_total{kind="timeout",policy="catalog"} 0.0' in text


def registry_with(stage: RateLimitStage) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(stage.collector)
    return registry


def test_the_stage_is_present_only_when_switched_on() -> None:
    assert not any(isinstance(s, RateLimitStage) for s in pattern_stages(Settings()))
    on = pattern_stages(Settings(rate_limit=True))
    assert isinstance(on[0], RateLimitStage)  # outermost of the pattern stages
    optimized = Settings(profile="optimized", gateway_cache=False, compression=False)
    assert any(isinstance(s, RateLimitStage) for s in pattern_stages(optimized))


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown policies"):
        RateLimitStage(Settings(rate_limit_fail_closed=("nope",)))
    with pytest.raises(ConfigError, match="RATE_LIMIT_EMPTY_KEY_STATUS"):
        load_settings({"BOOKVAULT_RATE_LIMIT_EMPTY_KEY_STATUS": "200", "BOOKVAULT_CONFIG": "/dev/null"})
    settings = load_settings(
        {"BOOKVAULT_RATE_LIMIT_FAIL_CLOSED": "payments,accounts", "BOOKVAULT_CONFIG": "/dev/null"}
    )
    assert settings.rate_limit_fail_closed == ("payments", "accounts")
