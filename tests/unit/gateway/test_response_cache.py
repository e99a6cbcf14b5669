"""The response cache stage, standalone (one process, local tier only) with a fake clock.
The shared Redis tier, purges over pub/sub and two processes are in
tests/integration/gateway/test_response_cache.py."""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from bookvault.auth import Principal
from bookvault.gateway.body import RequestBody
from bookvault.gateway.cache_control import parse_cache_control
from bookvault.gateway.compression import Compression
from bookvault.gateway.exchange import Exchange, GatewayProblem, Handler, Reply, compose
from bookvault.gateway.headers import read_request_headers
from bookvault.gateway.response_cache import ResponseCache, etag_matches, parse_route_ttls
from bookvault.gateway.routing import Route
from bookvault.patterns.clock import FakeClock

CATALOG = Route("catalog", "/api/catalog/v1", "http://127.0.0.1:1", anonymous_reads=True)
ACCOUNTS = Route("accounts", "/api/accounts/v1", "http://127.0.0.1:2", anonymous_reads=False)
TTLS = parse_route_ttls(["/api/catalog/v1/books=30", "/api/catalog/v1/stats=60"])
BOOK = "/api/catalog/v1/books/1"
JSON = (b"content-type", b"application/json")


class Origin:
    """The upstream: answers with a counter in the body so each fetch is told apart."""

    def __init__(self, headers: list[tuple[bytes, bytes]] | None = None, size: int = 0) -> None:
        self.headers = headers or []
        self.calls: list[Exchange] = []
        self.size = size
        self.fail: GatewayProblem | None = None
        self.status = 200
        self.gate: asyncio.Event | None = None
        self.per_caller = False
        self.arrived = asyncio.Event()  # set once a fetch has reached the upstream

    async def __call__(self, exchange: Exchange) -> Reply:
        self.calls.append(exchange)
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        who = exchange.principal.subject if self.per_caller and exchange.principal else "anyone"
        document = {"version": len(self.calls), "for": who, "pad": "x" * self.size}
        body = json.dumps(document).encode()
        headers = [JSON, (b"content-length", str(len(body)).encode()), *self.headers]
        return Reply(self.status, headers, body)


def make_exchange(
    path: str = BOOK,
    *,
    method: str = "GET",
    query: bytes = b"",
    headers: tuple[tuple[str, str], ...] = (),
    route: Route = CATALOG,
    principal: Principal | None = None,
) -> Exchange:
    head = read_request_headers([(k.lower().encode(), v.encode()) for k, v in headers])

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": query}
    return Exchange(
        scope=scope,
        request_body=RequestBody(receive, head, "1.1"),
        method=method,
        path=path,
        route=route,
        head=head,
        request_id=b"req",
        client="192.0.2.1",
        forwarded_for="192.0.2.1",
        peer_trusted=False,
        principal=principal,
    )


def header(reply: Reply, name: bytes) -> bytes | None:
    values = [value for key, value in reply.headers if key == name]
    return values[-1] if values else None


def version(reply: Reply) -> int:
    number: int = json.loads(reply.body)["version"]
    return number


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> ResponseCache:
    return ResponseCache(TTLS, redis=None, clock=clock)


async def get(cache: ResponseCache, origin: Handler, exchange: Exchange | None = None) -> Reply:
    return await cache(exchange or make_exchange(), origin)


# --- hits, misses and lifetimes ----------------------------------------------------


async def test_second_read_is_a_hit_without_the_upstream(cache: ResponseCache, clock: FakeClock) -> None:
    origin = Origin()
    first = await get(cache, origin)
    clock.advance(5)
    second = await get(cache, origin)
    assert header(first, b"x-cache") == b"MISS"
    assert header(second, b"x-cache") == b"HIT"
    assert header(second, b"age") == b"5"
    assert second.body == first.body
    assert len(origin.calls) == 1
    assert cache.counters.hits == 1
    assert cache.counters.misses == 1


async def test_the_route_default_ttl_applies_when_the_upstream_says_nothing(
    cache: ResponseCache, clock: FakeClock
) -> None:
    origin = Origin()
    await get(cache, origin)
    clock.advance(29.9)
    assert header(await get(cache, origin), b"x-cache") == b"HIT"
    clock.advance(0.2)
    expired = await get(cache, origin)
    assert header(expired, b"x-cache") == b"MISS"
    assert version(expired) == 2


async def test_paths_without_a_default_or_explicit_lifetime_are_not_stored(cache: ResponseCache) -> None:
    origin = Origin()
    for _ in range(2):
        await get(cache, origin, make_exchange("/api/catalog/v1/search", query=b"q=x"))
    assert len(origin.calls) == 2


async def test_max_age_and_s_maxage(cache: ResponseCache, clock: FakeClock) -> None:
    origin = Origin([(b"cache-control", b"max-age=100, s-maxage=5")])
    await get(cache, origin)
    clock.advance(4)
    assert header(await get(cache, origin), b"x-cache") == b"HIT"
    clock.advance(2)  # past s-maxage: the shared cache's own limit wins over max-age
    assert header(await get(cache, origin), b"x-cache") == b"MISS"


async def test_upstream_age_shortens_freshness(cache: ResponseCache, clock: FakeClock) -> None:
    origin = Origin([(b"cache-control", b"max-age=10"), (b"age", b"8")])
    await get(cache, origin)
    clock.advance(3)
    assert header(await get(cache, origin), b"x-cache") == b"MISS"


@pytest.mark.parametrize("directive", [b"no-store", b"private", b"no-cache", b"max-age=0"])
async def test_responses_the_upstream_keeps_from_shared_caches_are_not_stored(
    cache: ResponseCache, directive: bytes
) -> None:
    origin = Origin([(b"cache-control", directive)])
    await get(cache, origin)
    await get(cache, origin)
    assert len(origin.calls) == 2


async def test_vary_star_and_set_cookie_are_not_stored(cache: ResponseCache) -> None:
    for extra in ((b"vary", b"*"), (b"set-cookie", b"s=1")):
        origin = Origin([extra])
        await get(cache, origin)
        await get(cache, origin)
        assert len(origin.calls) == 2


async def test_only_200s_are_stored(cache: ResponseCache) -> None:
    origin = Origin()
    origin.status = 404
    await get(cache, origin)
    await get(cache, origin)
    assert len(origin.calls) == 2


async def test_head_shares_the_get_entry_and_is_fetched_as_get(cache: ResponseCache) -> None:
    origin = Origin()
    head = await get(cache, origin, make_exchange(method="HEAD"))
    got = await get(cache, origin)
    assert [call.method for call in origin.calls] == ["GET"]
    assert header(head, b"x-cache") == b"MISS"
    assert header(got, b"x-cache") == b"HIT"
    assert header(head, b"content-length") == header(got, b"content-length")


async def test_request_no_cache_revalidates_with_the_upstream(cache: ResponseCache) -> None:
    origin = Origin()
    await get(cache, origin)
    fresh = await get(cache, origin, make_exchange(headers=(("cache-control", "no-cache"),)))
    assert header(fresh, b"x-cache") == b"MISS"
    assert version(fresh) == 2
    assert version(await get(cache, origin)) == 2  # and the refreshed copy is what is kept


async def test_request_no_store_bypasses(cache: ResponseCache) -> None:
    origin = Origin()
    reply = await get(cache, origin, make_exchange(headers=(("cache-control", "no-store"),)))
    assert header(reply, b"x-cache") == b"BYPASS"
    assert header(await get(cache, origin), b"x-cache") == b"MISS"


async def test_query_and_vary_headers_are_part_of_the_key(cache: ResponseCache) -> None:
    origin = Origin([(b"vary", b"Accept-Language")])
    english = make_exchange(headers=(("accept-language", "en"),))
    await get(cache, origin, english)
    french = await get(cache, origin, make_exchange(headers=(("accept-language", "fr"),)))
    assert header(french, b"x-cache") == b"MISS"
    assert header(
        await get(cache, origin, make_exchange(headers=(("accept-language", "en"),))), b"x-cache"
    ) == (b"HIT")
    other_query = await get(cache, origin, make_exchange(query=b"x=1", headers=(("accept-language", "en"),)))
    assert header(other_query, b"x-cache") == b"MISS"


# --- privacy ------------------------------------------------------------------------


async def test_private_responses_never_reach_another_member_or_anonymous(cache: ResponseCache) -> None:
    origin = Origin([(b"cache-control", b"private, max-age=60")])
    origin.per_caller = True
    alice = await get(cache, origin, make_exchange(principal=Principal("alice", "member")))
    bob = await get(cache, origin, make_exchange(principal=Principal("bob", "member")))
    anonymous = await get(cache, origin, make_exchange())
    assert json.loads(alice.body)["for"] == "alice"
    assert json.loads(bob.body)["for"] == "bob"
    assert json.loads(anonymous.body)["for"] == "anyone"
    assert [header(r, b"x-cache") for r in (alice, bob, anonymous)] == [b"BYPASS"] * 3
    assert header(alice, b"etag") is None  # no validator minted for someone's private answer


async def test_coalesced_requests_never_share_a_private_response(cache: ResponseCache) -> None:
    origin = Origin([(b"cache-control", b"private")])
    origin.per_caller = True
    origin.gate = asyncio.Event()
    members = [f"m{i}" for i in range(5)]
    tasks = [
        asyncio.create_task(get(cache, origin, make_exchange(principal=Principal(m, "member"))))
        for m in members
    ]
    await asyncio.sleep(0)  # let every request reach the flight before the upstream answers
    origin.gate.set()
    replies = await asyncio.gather(*tasks)
    assert [json.loads(r.body)["for"] for r in replies] == members


async def test_routes_without_anonymous_reads_are_never_cached(cache: ResponseCache) -> None:
    origin = Origin([(b"cache-control", b"public, max-age=60")])
    origin.per_caller = True
    path = "/api/accounts/v1/members/alice/balance"
    alice = await get(
        cache, origin, make_exchange(path, route=ACCOUNTS, principal=Principal("alice", "member"))
    )
    admin = await get(
        cache, origin, make_exchange(path, route=ACCOUNTS, principal=Principal("root", "admin"))
    )
    assert json.loads(admin.body)["for"] == "root"
    assert header(alice, b"x-cache") == header(admin, b"x-cache") == b"BYPASS"


async def test_an_authenticated_read_of_a_public_route_shares_the_cache(cache: ResponseCache) -> None:
    origin = Origin()
    await get(cache, origin, make_exchange(principal=Principal("alice", "member")))
    anonymous = await get(cache, origin)
    assert header(anonymous, b"x-cache") == b"HIT"


async def test_vary_authorization_keeps_callers_apart(cache: ResponseCache) -> None:
    origin = Origin([(b"vary", b"Authorization")])
    origin.per_caller = True
    alice = make_exchange(headers=(("authorization", "Bearer a"),), principal=Principal("alice", "member"))
    bob = make_exchange(headers=(("authorization", "Bearer b"),), principal=Principal("bob", "member"))
    await get(cache, origin, alice)
    assert json.loads((await get(cache, origin, bob)).body)["for"] == "bob"


# --- validators ------------------------------------------------------------------------


async def test_etag_and_if_none_match_give_304_on_hits_and_misses(cache: ResponseCache) -> None:
    origin = Origin()
    miss = await get(cache, origin)
    etag = header(miss, b"etag")
    assert etag is not None
    assert etag.startswith(b'"')
    hit = await get(cache, origin, make_exchange(headers=(("if-none-match", etag.decode()),)))
    assert hit.status == 304
    assert hit.body == b""
    assert header(hit, b"etag") == etag
    assert header(hit, b"content-type") is None

    other = ResponseCache(TTLS, redis=None, clock=FakeClock())
    fresh_miss = await get(
        other, Origin(), make_exchange(headers=(("if-none-match", f'"nope", {etag.decode()}'),))
    )
    assert fresh_miss.status == 304
    assert header(fresh_miss, b"x-cache") == b"MISS"
    changed = await get(cache, origin, make_exchange(headers=(("if-none-match", '"something-else"'),)))
    assert changed.status == 200


async def test_conditional_headers_are_not_sent_upstream(cache: ResponseCache) -> None:
    origin = Origin()
    await get(
        cache, origin, make_exchange(headers=(("if-none-match", '"x"'), ("if-modified-since", "yesterday")))
    )
    assert [name for name, _ in origin.calls[0].head.forward] == []


def test_etag_weak_comparison() -> None:
    assert etag_matches('W/"a"', b'"a"')
    assert etag_matches("*", b'"a"')
    assert etag_matches('"b", "a"', b'"a"')
    assert not etag_matches('"b"', b'"a"')


# --- stale serving (RFC 5861) ---------------------------------------------------------------


async def test_stale_while_revalidate_serves_stale_and_refreshes_once(
    cache: ResponseCache, clock: FakeClock
) -> None:
    origin = Origin([(b"cache-control", b"max-age=10, stale-while-revalidate=30")])
    await get(cache, origin)
    clock.advance(15)
    stale = await get(cache, origin)
    assert header(stale, b"x-cache") == b"STALE"
    assert version(stale) == 1
    for _ in range(3):
        await asyncio.sleep(0)  # the background refresh runs on the loop
    refreshed = await get(cache, origin)
    assert header(refreshed, b"x-cache") == b"HIT"
    assert version(refreshed) == 2
    assert len(origin.calls) == 2


async def test_stale_if_error_covers_upstream_failures_within_its_window(
    cache: ResponseCache, clock: FakeClock
) -> None:
    origin = Origin([(b"cache-control", b"max-age=10, stale-if-error=60")])
    await get(cache, origin)
    clock.advance(20)
    origin.fail = GatewayProblem(504, "catalog timed out")
    served = await get(cache, origin)
    assert header(served, b"x-cache") == b"STALE"
    assert version(served) == 1
    origin.fail = None
    origin.status = 503
    assert header(await get(cache, origin), b"x-cache") == b"STALE"
    clock.advance(60)  # beyond the window: the failure is the answer
    origin.fail = GatewayProblem(504, "catalog timed out")
    with pytest.raises(GatewayProblem):
        await get(cache, origin)


async def test_must_revalidate_forbids_stale_answers(cache: ResponseCache, clock: FakeClock) -> None:
    origin = Origin([(b"cache-control", b"max-age=10, stale-if-error=60, must-revalidate")])
    await get(cache, origin)
    clock.advance(20)
    origin.fail = GatewayProblem(504, "catalog timed out")
    with pytest.raises(GatewayProblem):
        await get(cache, origin)


# --- one fetch per key --------------------------------------------------------------------


async def test_concurrent_cold_requests_make_one_upstream_fetch(cache: ResponseCache) -> None:
    origin = Origin()
    origin.gate = asyncio.Event()
    tasks = [asyncio.create_task(get(cache, origin)) for _ in range(200)]
    await origin.arrived.wait()
    for _ in range(5):
        await asyncio.sleep(0)  # and the others have joined it
    origin.gate.set()
    replies = await asyncio.gather(*tasks)
    assert len(origin.calls) == 1
    assert {r.body for r in replies} == {replies[0].body}
    assert all(r.status == 200 for r in replies)


# --- purges -----------------------------------------------------------------------------------


async def test_purge_by_path_and_prefix(cache: ResponseCache) -> None:
    origin = Origin()
    book = make_exchange
    await get(cache, origin, book())
    await get(cache, origin, book("/api/catalog/v1/books", query=b"genre=fiction"))
    await get(cache, origin, book("/api/catalog/v1/books"))
    await get(cache, origin, book("/api/catalog/v1/stats/genres"))
    await get(cache, origin, book("/api/catalog/v1/books/2"))
    cache.invalidated(
        json.dumps(
            {
                "paths": [BOOK],
                "prefixes": ["/api/catalog/v1/books?", "/api/catalog/v1/search?", "/api/catalog/v1/stats/"],
            }
        )
    )
    assert header(await get(cache, origin, book()), b"x-cache") == b"MISS"
    assert header(
        await get(cache, origin, book("/api/catalog/v1/books", query=b"genre=fiction")), b"x-cache"
    ) == (b"MISS")
    assert header(await get(cache, origin, book("/api/catalog/v1/books")), b"x-cache") == b"MISS"
    assert header(await get(cache, origin, book("/api/catalog/v1/stats/genres")), b"x-cache") == b"MISS"
    assert header(await get(cache, origin, book("/api/catalog/v1/books/2")), b"x-cache") == b"HIT"
    assert cache.counters.purges == 1


async def test_malformed_purges_are_ignored(cache: ResponseCache) -> None:
    origin = Origin()
    await get(cache, origin)
    for message in ("not json", "[1]", '{"paths": "x"}'):
        cache.invalidated(message)
    assert header(await get(cache, origin), b"x-cache") == b"HIT"


async def test_a_fetch_overlapping_a_purge_is_not_kept(cache: ResponseCache) -> None:
    origin = Origin()
    origin.gate = asyncio.Event()
    pending = asyncio.create_task(get(cache, origin))
    await origin.arrived.wait()
    cache.purge({BOOK}, ())  # the write commits while the old row is on its way
    origin.gate.set()
    await pending
    origin.gate = None
    after = await get(cache, origin)
    assert header(after, b"x-cache") == b"MISS"
    assert version(after) == 2


async def test_a_request_after_a_purge_never_gets_the_older_in_flight_body(cache: ResponseCache) -> None:
    origin = Origin()
    origin.gate = asyncio.Event()
    before = asyncio.create_task(get(cache, origin))
    await origin.arrived.wait()
    cache.purge({BOOK}, ())
    after = asyncio.create_task(get(cache, origin))  # joins the fetch that began before the purge
    await asyncio.sleep(0)
    origin.gate.set()
    assert version(await before) == 1
    assert version(await after) == 2


async def test_a_write_through_this_gateway_evicts_its_target(cache: ResponseCache) -> None:
    origin = Origin()
    await get(cache, origin)
    await get(cache, origin, make_exchange(method="PATCH", principal=Principal("root", "admin")))
    assert header(await get(cache, origin), b"x-cache") == b"MISS"


async def test_losing_the_purge_channel_clears_and_bypasses_the_local_tier(cache: ResponseCache) -> None:
    origin = Origin()
    await get(cache, origin)
    cache.reset(live=False)
    down = await get(cache, origin)
    assert header(down, b"x-cache") == b"MISS"
    cache.reset(live=True)
    again = await get(cache, origin)
    assert header(again, b"x-cache") == b"MISS"  # nothing from before the gap is trusted
    assert header(await get(cache, origin), b"x-cache") == b"HIT"


# --- with compression behind it ----------------------------------------------------------------


async def test_encoded_variants_are_cached_once_per_coding(cache: ResponseCache) -> None:
    compression = Compression()
    cache = ResponseCache(TTLS, redis=None, clock=FakeClock(), choose_coding=compression.choose)
    origin = Origin(size=4000)
    handler = compose([cache, compression], origin)

    async def fetch(accept: str) -> Reply:
        return await handler(make_exchange(headers=(("accept-encoding", accept),)))

    gz = await fetch("gzip")
    again = await fetch("deflate, gzip;q=0.9")  # spelled differently, same coding chosen
    br = await fetch("br")
    plain = await fetch("identity")
    assert [header(r, b"x-cache") for r in (gz, again, br, plain)] == [b"MISS", b"HIT", b"MISS", b"MISS"]
    assert again.body == gz.body
    assert header(gz, b"content-encoding") == b"gzip"
    assert json.loads(gzip.decompress(gz.body))["pad"] == json.loads(plain.body)["pad"]
    assert len({header(r, b"etag") for r in (gz, br, plain)}) == 3
    assert len(origin.calls) == 3
    assert header(gz, b"vary") == b"Accept-Encoding"


# --- settings and metrics --------------------------------------------------------------------


def test_route_ttls_longest_prefix_wins() -> None:
    ttls = parse_route_ttls(["/api/catalog/v1=5", "/api/catalog/v1/stats=60"])
    assert ttls.ttl_for("/api/catalog/v1/stats/genres") == 60
    assert ttls.ttl_for("/api/catalog/v1/books/1") == 5
    assert ttls.ttl_for("/api/catalog/v1x") is None
    with pytest.raises(ValueError, match="prefix=seconds"):
        parse_route_ttls(["books"])


def test_cache_control_parsing() -> None:
    cc = parse_cache_control(
        ["Public, MAX-AGE=60", 's-maxage="30", stale-while-revalidate=5, proxy-revalidate']
    )
    assert (cc.public, cc.max_age, cc.s_maxage, cc.stale_while_revalidate, cc.must_revalidate) == (
        True,
        60,
        30,
        5,
        True,
    )
    assert parse_cache_control(["max-age=abc"]).max_age == 0  # invalid freshness: stale at once
    assert parse_cache_control(['private="set-cookie"']).private


async def test_metrics_use_the_shared_cache_metric_names(cache: ResponseCache) -> None:
    origin = Origin()
    await get(cache, origin)
    await get(cache, origin)
    registry = CollectorRegistry()
    registry.register(cache.collector)
    text = generate_latest(registry).decode()
    assert 'bookvault_cache_hits_total{cache="gateway"} 1.0' in text
    assert 'bookvault_cache_misses_total{cache="gateway"} 1.0' in text
    assert 'bookvault_cache_purges_total{cache="gateway"} 0.0' in text
