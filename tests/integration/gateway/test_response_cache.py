"""The response cache and compression in real gateway processes (granian, as the
stack runs them) in front of the session's real catalog, sharing the real Redis.

Two gateways with `gateway_cache` and `compression` on share the Redis tier and
each listen for purges on `bookvault:purge`. The e2e test at the end also starts a
catalog of its own with `gateway_cache` on, so the catalog itself publishes the
purge after its commit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import itertools
import json
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import brotli  # type: ignore[import-untyped]  # no stubs published
import pytest
import zstandard
from multidict import CIMultiDict
from redis.asyncio import Redis
from tests.support.processes import Process, free_port

from bookvault.catalog.isbn import isbn13_check_digit
from bookvault.config import Settings

pytestmark = pytest.mark.stack

# How long a purge may take to travel Redis pub/sub to another process before the
# test calls it lost. Correctness with a bound, not a latency measurement.
_PURGE_DEADLINE_S = 10.0
_isbn_bodies = itertools.count(random.Random().randrange(10**8, 9 * 10**8))


def _new_isbn() -> str:
    first12 = f"978{next(_isbn_bodies):09d}"
    return first12 + isbn13_check_digit(first12)


def _gateway_settings(system: Settings, **overrides: Any) -> Settings:
    return dataclasses.replace(
        system, gateway_port=free_port(), gateway_cache=True, compression=True, **overrides
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway-cache")


@pytest.fixture(scope="module")
async def gateways(system: Settings, workdir: Path) -> AsyncIterator[tuple[str, str]]:
    """Two cached, compressing gateway processes in front of the session's services."""
    each = (_gateway_settings(system) for _ in range(2))
    async with Process.running("gateway", each, workdir, "/readyz") as started:
        yield started[0].url, started[1].url


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    # Bodies exactly as sent: the tests decode (and count) them themselves.
    async with aiohttp.ClientSession(
        auto_decompress=False, timeout=aiohttp.ClientTimeout(total=15)
    ) as session:
        yield session


@pytest.fixture
async def redis_client(system: Settings) -> AsyncIterator[Redis]:
    assert system.redis_url is not None
    client = Redis.from_url(system.redis_url)
    yield client
    await client.aclose()


@dataclasses.dataclass(frozen=True)
class Got:
    status: int
    headers: CIMultiDict[str]
    body: bytes

    @property
    def cache(self) -> str:
        return self.headers.get("X-Cache", "")

    def json(self) -> Any:
        coding = self.headers.get("Content-Encoding")
        body = self.body
        if coding == "br":
            body = brotli.decompress(body)
        elif coding == "zstd":
            body = zstandard.ZstdDecompressor().decompress(body)
        elif coding == "gzip":
            body = gzip.decompress(body)
        return json.loads(body)


async def fetch(
    client: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    payload: Any = None,
) -> Got:
    sent = {"Accept-Encoding": "identity", **(headers or {})}
    async with client.request(method, url, headers=sent, json=payload) as resp:
        return Got(resp.status, CIMultiDict(resp.headers), await resp.read())


async def create_book(client: aiohttp.ClientSession, base: str, admin: str, **fields: Any) -> dict[str, Any]:
    payload = {
        "isbn": _new_isbn(),
        "title": "A Cached Harbour",
        "author": "Ada Reed",
        "genre": "Mystery",
        "published_year": 2001,
        "total_copies": 2,
        **fields,
    }
    got = await fetch(client, "POST", base + "/api/catalog/v1/books", headers=_bearer(admin), payload=payload)
    assert got.status == 201, got.body
    book: dict[str, Any] = got.json()
    return book


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _unique_word() -> str:
    return "zq" + "".join(random.choice("bcdfghjklmnpqrstvwxz") for _ in range(10))


async def _eventually_title(client: aiohttp.ClientSession, url: str, title: str) -> list[str]:
    """GETs until `title` shows; returns the titles seen. Fails after the purge deadline."""
    seen: list[str] = []
    deadline = time.monotonic() + _PURGE_DEADLINE_S
    while time.monotonic() < deadline:
        got = await fetch(client, "GET", url)
        assert got.status == 200
        seen.append(got.json()["title"])
        if seen[-1] == title:
            return seen
        await asyncio.sleep(0.01)  # waiting for pub/sub delivery, not timing an assertion
    raise AssertionError(f"still {seen[-1]!r} after {_PURGE_DEADLINE_S}s: the purge never arrived")


# --- the tests ---------------------------------------------------------------------------


async def test_hits_are_shared_between_gateway_processes(
    gateways: tuple[str, str], system: Settings, client: aiohttp.ClientSession, make_token: Any
) -> None:
    first, second = gateways
    book = await create_book(client, system.service_url("catalog"), make_token("1", "admin"))
    path = f"/api/catalog/v1/books/{book['id']}"
    miss = await fetch(client, "GET", first + path)
    hit = await fetch(client, "GET", first + path)
    other = await fetch(client, "GET", second + path)  # from the Redis tier
    assert (miss.cache, hit.cache, other.cache) == ("MISS", "HIT", "HIT")
    assert miss.body == hit.body == other.body
    assert miss.headers["ETag"] == hit.headers["ETag"] == other.headers["ETag"]
    assert "Age" in hit.headers


def _cache_counter(metrics_text: str, name: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(f'bookvault_cache_{name}_total{{cache="gateway"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"bookvault_cache_{name}_total is missing from the gateway's /metrics")


async def test_the_gateways_metrics_count_its_hits_and_misses(
    gateways: tuple[str, str], system: Settings, client: aiohttp.ClientSession, make_token: Any
) -> None:
    first, _ = gateways
    before = (await fetch(client, "GET", first + "/metrics")).body.decode()
    book = await create_book(client, system.service_url("catalog"), make_token("1", "admin"))
    url = first + f"/api/catalog/v1/books/{book['id']}"
    assert [(await fetch(client, "GET", url)).cache for _ in range(3)] == ["MISS", "HIT", "HIT"]
    after = (await fetch(client, "GET", first + "/metrics")).body.decode()
    assert _cache_counter(after, "hits") - _cache_counter(before, "hits") == 2
    assert _cache_counter(after, "misses") - _cache_counter(before, "misses") == 1


async def test_if_none_match_gets_304_through_the_gateway(
    gateways: tuple[str, str], system: Settings, client: aiohttp.ClientSession, make_token: Any
) -> None:
    first, _ = gateways
    book = await create_book(client, system.service_url("catalog"), make_token("1", "admin"))
    url = first + f"/api/catalog/v1/books/{book['id']}"
    etag = (await fetch(client, "GET", url)).headers["ETag"]
    not_modified = await fetch(client, "GET", url, headers={"If-None-Match": etag})
    assert not_modified.status == 304
    assert not_modified.body == b""
    assert not_modified.headers["ETag"] == etag


async def test_authenticated_reads_of_the_catalog_share_but_member_data_is_bypassed(
    gateways: tuple[str, str], system: Settings, client: aiohttp.ClientSession, make_token: Any
) -> None:
    first, _ = gateways
    book = await create_book(client, system.service_url("catalog"), make_token("1", "admin"))
    url = first + f"/api/catalog/v1/books/{book['id']}"
    member = await fetch(client, "GET", url, headers=_bearer(make_token("7")))
    anonymous = await fetch(client, "GET", url)
    assert (member.cache, anonymous.cache) == ("MISS", "HIT")
    loans = await fetch(
        client, "GET", first + "/api/borrowing/v1/members/7/loans", headers=_bearer(make_token("7"))
    )
    assert loans.cache == "BYPASS"
    other = await fetch(
        client, "GET", first + "/api/borrowing/v1/members/7/loans", headers=_bearer(make_token("8"))
    )
    assert other.status == 403  # never another member's cached answer


async def test_a_purge_message_reaches_every_gateway(
    gateways: tuple[str, str],
    system: Settings,
    client: aiohttp.ClientSession,
    make_token: Any,
    redis_client: Redis,
) -> None:
    """The gateway's side of the contract: the write goes straight to the catalog (whose
    own purges may be off in this stack) and the test publishes the purge itself."""
    first, second = gateways
    catalog = system.service_url("catalog")
    admin = make_token("1", "admin")
    book = await create_book(client, catalog, admin)
    path = f"/api/catalog/v1/books/{book['id']}"
    for base in gateways:
        await fetch(client, "GET", base + path)
        assert (await fetch(client, "GET", base + path)).cache == "HIT"
    patched = await fetch(
        client, "PATCH", catalog + path, headers=_bearer(admin), payload={"title": "Renamed"}
    )
    assert patched.status == 200, patched.body
    message = {"paths": [path], "prefixes": ["/api/catalog/v1/books?", "/api/catalog/v1/search?"]}
    await redis_client.publish("bookvault:purge", json.dumps(message))
    for base in (first, second):
        seen = await _eventually_title(client, base + path, "Renamed")
        assert seen[-1] == "Renamed"
        after = await fetch(client, "GET", base + path)
        assert after.json()["title"] == "Renamed"  # and never the old copy again


async def test_list_responses_are_compressed_and_cached_per_coding(
    gateways: tuple[str, str], system: Settings, client: aiohttp.ClientSession, make_token: Any
) -> None:
    first, second = gateways
    genre = _unique_word()
    admin = make_token("1", "admin")
    for number in range(40):
        await create_book(client, system.service_url("catalog"), admin, genre=genre, title=f"Volume {number}")
    path = f"/api/catalog/v1/books?genre={genre}&limit=100"
    plain = await fetch(client, "GET", first + path)
    sizes = {"identity": len(plain.body)}
    for coding in ("br", "zstd", "gzip"):
        encoded = await fetch(client, "GET", first + path, headers={"Accept-Encoding": coding})
        again = await fetch(
            client, "GET", second + path, headers={"Accept-Encoding": f"{coding}, deflate;q=0.1"}
        )
        assert encoded.headers["Content-Encoding"] == coding
        assert "Accept-Encoding" in encoded.headers["Vary"]
        assert encoded.json() == plain.json()
        assert again.cache == "HIT"
        assert again.body == encoded.body
        assert encoded.headers["ETag"] != plain.headers["ETag"]
        sizes[coding] = len(encoded.body)
    print(f"list of 40 books, bytes by coding: {sizes}")  # for the report
    assert len(plain.json()["items"]) == 40
    for coding in ("br", "zstd", "gzip"):
        assert sizes[coding] <= 0.4 * sizes["identity"], sizes


async def test_redis_unreachable_is_a_miss_never_an_error(
    system: Settings, workdir: Path, client: aiohttp.ClientSession, make_token: Any
) -> None:
    settings = _gateway_settings(system, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    started = Process.start("gateway", settings, workdir)
    try:
        await started.wait_ready("/readyz")
        book = await create_book(client, system.service_url("catalog"), make_token("1", "admin"))
        url = started.url + f"/api/catalog/v1/books/{book['id']}"
        replies = [await fetch(client, "GET", url) for _ in range(3)]
        assert [r.status for r in replies] == [200, 200, 200]
        assert [r.cache for r in replies] == ["MISS", "MISS", "MISS"]
    finally:
        started.stop()


@pytest.mark.e2e
async def test_a_patch_is_visible_through_every_gateway_e2e(
    system: Settings, workdir: Path, client: aiohttp.ClientSession, make_token: Any
) -> None:
    """End to end: PATCH through one gateway, the catalog commits and publishes the
    purge itself, the next GETs through both gateways show the change. Needs the
    catalog's purge publishing (its `gateway_cache` switch on), so this test runs a
    catalog of its own with that switch, behind two gateways of its own."""
    catalog_port = free_port()
    catalog_settings = dataclasses.replace(system, catalog_port=catalog_port, gateway_cache=True)
    catalog = Process.start("catalog", catalog_settings, workdir)
    gateways: list[Process] = []
    try:
        await catalog.wait_ready("/readyz")
        for _ in range(2):
            gateways.append(
                Process.start("gateway", _gateway_settings(system, catalog_port=catalog_port), workdir)
            )
        for gateway in gateways:
            await gateway.wait_ready("/readyz")
        first, second = (gateway.url for gateway in gateways)
        admin = make_token("1", "admin")
        book = await create_book(client, first, admin)
        path = f"/api/catalog/v1/books/{book['id']}"
        for base in (first, second):
            await fetch(client, "GET", base + path)
            assert (await fetch(client, "GET", base + path)).cache == "HIT"
        patched = await fetch(
            client, "PATCH", first + path, headers=_bearer(admin), payload={"title": "Renamed"}
        )
        assert patched.status == 200, patched.body
        assert (await fetch(client, "GET", first + path)).json()["title"] == "Renamed"
        seen = await _eventually_title(client, second + path, "Renamed")
        assert seen[-1] == "Renamed"
    finally:
        for process in [*gateways, catalog]:
            process.stop()
