"""The catalog with its caches on (`optimized`), as a real granian process on the
session's PostgreSQL and a Redis of its own (so the tests can kill it).

Database work is counted by PostgreSQL itself (pg_stat_statements), not by the app.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest
import redis.asyncio as aioredis
from tests.support.processes import free_port

from bookvault.catalog import repo
from bookvault.catalog.caching import CatalogReads
from bookvault.catalog.purge import CHANNEL
from bookvault.catalog.schemas import Book, NewBook
from bookvault.catalog.service import CatalogService
from bookvault.config import Settings
from bookvault.stack import redis as stack_redis
from bookvault.stack.processes import ChildProcess
from bookvault.stack.services import ServiceSpec, command, wait_healthy

from .conftest import Catalog, MakeToken, new_isbn

pytestmark = pytest.mark.stack


@dataclasses.dataclass
class CachedCatalog:
    settings: Settings
    url: str
    redis_url: str
    redis: ChildProcess
    service: ChildProcess

    def kill_redis(self) -> None:
        self.redis.kill()

    def start_redis(self) -> None:
        self.redis.start()
        stack_redis.wait_ready(self.redis_url, self.redis)


@pytest.fixture(scope="module")
def cached_catalog(infra: Settings) -> Iterator[CachedCatalog]:
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is needed"
    state = Path(tempfile.mkdtemp(prefix="bookvault-catalog-cache-"))
    redis_port, catalog_port = free_port(), free_port()
    password = secrets.token_hex(16)
    redis_url = stack_redis.url(password, redis_port)
    redis_process = stack_redis.server_process(
        Path(binary), state / "redis", redis_port, password, state / "redis.log"
    )
    # Replicas off: these tests count the fills PostgreSQL ran on the primary
    # (test_read_replicas covers caching with replicas on).
    settings = dataclasses.replace(
        infra, profile="optimized", replicas=False, catalog_port=catalog_port, redis_url=redis_url
    )
    env = {**os.environ, **settings.as_environment(), "PYTHONUNBUFFERED": "1"}
    spec = ServiceSpec("catalog", catalog_port, "bookvault.catalog.app:create_app")
    service = ChildProcess("catalog-cached", command(spec, settings.host), state / "catalog.log", env=env)
    cached = CachedCatalog(settings, settings.service_url("catalog"), redis_url, redis_process, service)
    try:
        cached.start_redis()
        service.start()
        wait_healthy("catalog-cached", f"{cached.url}/healthz", service)
        yield cached
    finally:
        service.stop()
        redis_process.stop()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
async def cached(cached_catalog: CachedCatalog, make_token: MakeToken) -> AsyncIterator[Catalog]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield Catalog(session, cached_catalog.url, make_token)


async def _book_fetches(infra: Settings) -> int:
    """How often PostgreSQL has run the book-by-id query in the catalog database."""
    assert infra.database_url is not None
    conn = await asyncpg.connect(infra.database_url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        calls = await conn.fetchval(
            """SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
               WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'catalog') AND query = $1""",
            repo._FETCH_BOOK,  # the statement whose executions are counted
        )
    finally:
        await conn.close()
    return int(calls)


async def _metric(catalog: Catalog, name: str, labels: str) -> float:
    async with catalog.session.get(f"{catalog.base_url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    series = f"{name}{{{labels}}}" if labels else name
    match = re.search(rf"^{re.escape(series)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_a_thousand_concurrent_cold_reads_of_one_book_cost_one_query(
    cached: Catalog, infra: Settings
) -> None:
    book = await cached.create(title="Stampede Harbour")
    before = await _book_fetches(infra)

    replies = await asyncio.gather(*(cached.call("GET", f"/books/{book['id']}") for _ in range(1000)))

    assert {reply.status for reply in replies} == {200}
    assert {reply.body for reply in replies} == {replies[0].body}
    assert replies[0].json() == book
    assert await _book_fetches(infra) - before == 1


async def test_a_patch_is_visible_on_the_next_read(cached: Catalog) -> None:
    word = cached.unique_word()
    book = await cached.create(title=f"Before {word}", genre=f"G{word}")
    for _ in range(3):  # warm both tiers, list and search included
        assert (await cached.book(book["id"]))["title"] == f"Before {word}"
        assert (await cached.call("GET", f"/books?genre=G{word}")).json()["items"][0][
            "title"
        ] == f"Before {word}"
        assert (await cached.call("GET", f"/search?q={word}")).json()["items"][0]["id"] == book["id"]

    patched = await cached.call(
        "PATCH", f"/books/{book['id']}", token=cached.admin(), payload={"title": f"After {word}"}
    )

    assert patched.status == 200, patched.body
    assert (await cached.book(book["id"]))["title"] == f"After {word}"
    assert (await cached.call("GET", f"/books?genre=G{word}")).json()["items"][0]["title"] == f"After {word}"
    assert (await cached.call("GET", f"/search?q={word}")).json()["items"][0]["title"] == f"After {word}"


async def test_reservations_change_the_cached_copy_count(cached: Catalog) -> None:
    book = await cached.create(total_copies=2)
    assert (await cached.book(book["id"]))["available_copies"] == 2
    reservation = cached.new_reservation_id()

    assert (await cached.reserve(book["id"], reservation)).status == 201
    assert (await cached.book(book["id"]))["available_copies"] == 1

    assert (await cached.release(reservation)).status == 200
    assert (await cached.book(book["id"]))["available_copies"] == 2


async def test_a_deleted_book_is_gone_and_a_missing_one_stays_missing(cached: Catalog) -> None:
    book = await cached.create()
    assert (await cached.call("GET", f"/books/{book['id']}")).status == 200

    assert (await cached.call("DELETE", f"/books/{book['id']}", token=cached.admin())).status == 204

    for _ in range(2):  # the second answer comes from the remembered miss
        reply = await cached.call("GET", f"/books/{book['id']}")
        assert reply.status == 404
        assert str(book["id"]) in reply.detail


async def test_each_change_publishes_the_gateway_purge(
    cached: Catalog, cached_catalog: CachedCatalog
) -> None:
    book = await cached.create()
    client = aioredis.Redis.from_url(cached_catalog.redis_url)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(CHANNEL)
        await pubsub.get_message(timeout=5)  # the subscription confirmation

        patched = await cached.call(
            "PATCH", f"/books/{book['id']}", token=cached.admin(), payload={"rating": 4.5}
        )
        assert patched.status == 200

        message: dict[str, Any] | None = None
        for _ in range(50):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message is not None:
                break
        assert message is not None, "no purge message arrived"
        assert json.loads(message["data"]) == {
            "paths": [f"/api/catalog/v1/books/{book['id']}"],
            "prefixes": ["/api/catalog/v1/books?", "/api/catalog/v1/search?", "/api/catalog/v1/stats/"],
        }
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped upstream
        await client.aclose()


async def test_hits_and_misses_are_on_the_metrics_page(cached: Catalog) -> None:
    book = await cached.create()
    hits = await _metric(cached, "bookvault_cache_hits_total", 'cache="book"')
    misses = await _metric(cached, "bookvault_cache_misses_total", 'cache="book"')

    await cached.book(book["id"])  # a miss
    await cached.book(book["id"])  # a hit

    assert await _metric(cached, "bookvault_cache_misses_total", 'cache="book"') == misses + 1
    assert await _metric(cached, "bookvault_cache_hits_total", 'cache="book"') == hits + 1


async def test_reads_and_writes_stay_correct_while_redis_is_down(
    cached: Catalog, cached_catalog: CachedCatalog
) -> None:
    book = await cached.create(title="Outage Harbour")
    assert (await cached.book(book["id"]))["title"] == "Outage Harbour"
    degraded = await _metric(cached, "bookvault_cache_degraded_reads_total", 'cache="book"')

    cached_catalog.kill_redis()
    try:
        for _ in range(5):
            assert (await cached.book(book["id"]))["title"] == "Outage Harbour"
        patched = await cached.call(
            "PATCH", f"/books/{book['id']}", token=cached.admin(), payload={"title": "Outage Over"}
        )
        assert patched.status == 200, patched.body
        assert (await cached.book(book["id"]))["title"] == "Outage Over"
        assert (await cached.call("GET", "/search?q=outage")).status == 200
        assert await _metric(cached, "bookvault_cache_degraded_reads_total", 'cache="book"') > degraded
        assert await _metric(cached, "bookvault_cache_purge_errors_total", "") >= 1
    finally:
        cached_catalog.start_redis()

    # Back on an empty Redis: still the committed value.
    for _ in range(3):
        assert (await cached.book(book["id"]))["title"] == "Outage Over"


async def test_without_the_cache_coalescing_shares_one_query_among_concurrent_reads(
    infra: Settings, catalog_service: CatalogService
) -> None:
    reads = CatalogReads(catalog_service, backend=None, coalescing=True)
    book = await catalog_service.create_book(
        NewBook(
            isbn=new_isbn(),
            title="Shared Read",
            author="Ada Reed",
            genre="Mystery",
            published_year=2001,
            total_copies=1,
        )
    )
    before = await _book_fetches(infra)

    bodies = await asyncio.gather(*(reads.book_json(book.id) for _ in range(200)))

    assert {msgspec.json.decode(body, type=Book) for body in bodies} == {book}
    assert await _book_fetches(infra) - before == 1
    # Nothing is kept: the next read asks the database again.
    await reads.book_json(book.id)
    assert await _book_fetches(infra) - before == 2
