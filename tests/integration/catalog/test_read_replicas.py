"""The catalog with `replicas` on, as real granian processes on the session's
PostgreSQL primary and streaming replica.

Each catalog reaches the replica through a fault proxy, so a test can take the
replica away without touching the one every other test shares. Which server
answered a read is taken from the catalog's own `/metrics`
(`bookvault_db_reads_total{server=...}`), and the replica's old state showing
through proves it too. Tests that pause replay resume it in a `finally`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest
from tests.support.processes import free_port

from bookvault.config import Settings, with_database
from bookvault.faults import FaultProxy, Outage
from bookvault.patterns.db import parse_lsn
from bookvault.stack.processes import ChildProcess
from bookvault.stack.services import ServiceSpec, command, wait_healthy

from .conftest import Catalog, MakeToken

pytestmark = pytest.mark.stack


@dataclasses.dataclass
class RoutedCatalog:
    url: str
    proxy: FaultProxy
    process: ChildProcess


@contextlib.asynccontextmanager
async def _routed_catalog(infra: Settings, *, cache: bool) -> AsyncIterator[RoutedCatalog]:
    replica = urlsplit(infra.replica_urls[0])
    assert replica.port is not None
    state = Path(tempfile.mkdtemp(prefix="bookvault-catalog-replicas-"))
    async with FaultProxy(replica.port) as proxy:
        proxied = replica._replace(netloc=replica.netloc.replace(f":{replica.port}", f":{proxy.port}"))
        settings = dataclasses.replace(
            infra,
            # The optimized profile as shipped, or baseline with only the read side on.
            profile="optimized" if cache else "baseline",
            catalog_port=free_port(),
            replica_urls=(proxied.geturl(),),
            replicas=None if cache else True,
            materialized_views=None if cache else True,
            # Paused replay must not take the replica out of rotation during a test.
            replica_max_lag_seconds=300.0,
            write_position_ttl_s=600.0,
            stats_refresh_quiet_s=0.0,
            stats_refresh_max_delay_s=0.0,
        )
        env = {**os.environ, **settings.as_environment(), "PYTHONUNBUFFERED": "1"}
        spec = ServiceSpec("catalog", settings.catalog_port, "bookvault.catalog.app:create_app")
        name = f"catalog-replicas-{'cached' if cache else 'direct'}"
        process = ChildProcess(name, command(spec, settings.host), state / "catalog.log", env=env)
        try:
            process.start()
            # In a thread: the proxy lives on this event loop and must keep serving.
            await asyncio.to_thread(wait_healthy, name, f"{settings.service_url('catalog')}/healthz", process)
            yield RoutedCatalog(settings.service_url("catalog"), proxy, process)
        finally:
            process.stop()
            shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
async def direct(infra: Settings) -> AsyncIterator[RoutedCatalog]:
    """Replicas on, caches off: reads are routed by the caller's own writes."""
    async with _routed_catalog(infra, cache=False) as catalog:
        yield catalog


@pytest.fixture(scope="module")
async def cached(infra: Settings) -> AsyncIterator[RoutedCatalog]:
    """The optimized profile (replicas and caches on): shared fills are routed by the
    book's last write."""
    async with _routed_catalog(infra, cache=True) as catalog:
        yield catalog


@contextlib.asynccontextmanager
async def _client(routed: RoutedCatalog, make_token: MakeToken) -> AsyncIterator[Catalog]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield Catalog(session, routed.url, make_token)


@contextlib.asynccontextmanager
async def _replay_paused(infra: Settings) -> AsyncIterator[None]:
    conn = await asyncpg.connect(with_database(infra.replica_urls[0], "catalog"))
    try:
        await conn.execute("SELECT pg_wal_replay_pause()")
        yield
    finally:
        # Whatever happened, the shared replica replays again for the other tests.
        await conn.execute("SELECT pg_wal_replay_resume()")
        await conn.close()


async def _metrics(catalog: Catalog) -> str:
    async with catalog.session.get(f"{catalog.base_url}/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


async def _metric(catalog: Catalog, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (-?[0-9.e+]+)$", await _metrics(catalog), re.MULTILINE)
    assert match is not None, f"{series} missing from /metrics"
    return float(match.group(1))


async def _reads(catalog: Catalog) -> tuple[float, float]:
    """Routed reads so far: (primary, replica)."""
    text = await _metrics(catalog)
    found = {
        server: float(value)
        for server, value in re.findall(
            r'^bookvault_db_reads_total\{server="(\w+)"\} ([0-9.e+]+)$', text, re.M
        )
    }
    return found["primary"], found["replica"]


async def _eventually(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _replica_caught_up(catalog: Catalog, infra: Settings) -> None:
    """Until the catalog has seen the replica replay everything written so far."""
    conn = await asyncpg.connect(infra.service_database_url("catalog"))
    try:
        written = parse_lsn(await conn.fetchval("SELECT pg_current_wal_lsn()::text"))
    finally:
        await conn.close()

    async def caught_up() -> bool:
        series = 'bookvault_db_replica_replayed_lsn{replica="replica-1"}'
        return await _metric(catalog, series) >= written

    await _eventually(caught_up, "the replica to catch up")


async def _title(catalog: Catalog, book_id: int, token: str | None = None) -> Any:
    reply = await catalog.call("GET", f"/books/{book_id}", token=token)
    assert reply.status == 200, reply.body
    return reply.json()["title"]


async def test_the_writer_reads_their_own_edit_while_others_keep_reading_the_paused_replica(
    direct: RoutedCatalog, infra: Settings, make_token: MakeToken
) -> None:
    async with _client(direct, make_token) as catalog:
        book = await catalog.create(title="Before Replay")
        await _replica_caught_up(catalog, infra)
        admin, member = catalog.admin(), catalog.member()
        async with _replay_paused(infra):
            patched = await catalog.call(
                "PATCH", f"/books/{book['id']}", token=admin, payload={"title": "After Replay"}
            )
            assert patched.status == 200, patched.body
            primary_before, replica_before = await _reads(catalog)

            # The admin who wrote sees the edit, from the primary ...
            assert await _title(catalog, book["id"], admin) == "After Replay"
            assert await _reads(catalog) == (primary_before + 1, replica_before)
            # ... while a member and an anonymous reader keep reading the replica,
            # which has not replayed it.
            assert await _title(catalog, book["id"], member) == "Before Replay"
            assert await _title(catalog, book["id"]) == "Before Replay"
            assert await _reads(catalog) == (primary_before + 1, replica_before + 2)

            # The lag is on /metrics while replay is paused.
            async def lagging() -> bool:
                return await _metric(catalog, 'bookvault_db_replica_lag_bytes{replica="replica-1"}') > 0

            await _eventually(lagging, "the lag metric to move")
            assert await _metric(catalog, 'bookvault_db_replica_in_rotation{replica="replica-1"}') == 1

        async def replayed() -> bool:
            return bool(await _title(catalog, book["id"]) == "After Replay")

        await _eventually(replayed, "the replica to replay the edit")

        async def no_lag() -> bool:
            return await _metric(catalog, 'bookvault_db_replica_lag_seconds{replica="replica-1"}') == 0

        await _eventually(no_lag, "the lag to go back to zero")


async def test_reads_keep_succeeding_from_the_primary_when_the_replica_is_down(
    direct: RoutedCatalog, infra: Settings, make_token: MakeToken
) -> None:
    async with _client(direct, make_token) as catalog:
        word = catalog.unique_word()
        book = await catalog.create(title=f"Outage {word}", genre=f"G{word}")
        await _replica_caught_up(catalog, infra)
        direct.proxy.set(Outage())
        try:
            for _ in range(3):
                assert await _title(catalog, book["id"]) == f"Outage {word}"
                listing = await catalog.call("GET", f"/books?genre=G{word}")
                assert listing.status == 200
                assert [item["id"] for item in listing.json()["items"]] == [book["id"]]
                assert (await catalog.call("GET", f"/search?q={word}")).status == 200
                assert (await catalog.call("GET", "/stats/genres")).status == 200

            async def out_of_rotation() -> bool:
                series = 'bookvault_db_replica_in_rotation{replica="replica-1"}'
                return await _metric(catalog, series) == 0

            await _eventually(out_of_rotation, "the replica to leave the rotation")
            primary_before, replica_before = await _reads(catalog)
            assert await _title(catalog, book["id"]) == f"Outage {word}"
            assert await _reads(catalog) == (primary_before + 1, replica_before)
        finally:
            direct.proxy.clear()

        async def back_in_rotation() -> bool:
            return await _metric(catalog, 'bookvault_db_replica_in_rotation{replica="replica-1"}') == 1

        await _eventually(back_in_rotation, "the replica to rejoin the rotation")
        _, replica_before = await _reads(catalog)
        assert await _title(catalog, book["id"]) == f"Outage {word}"
        assert (await _reads(catalog))[1] == replica_before + 1


async def test_a_cache_fill_after_an_edit_never_brings_back_the_replicas_old_row(
    cached: RoutedCatalog, infra: Settings, make_token: MakeToken
) -> None:
    async with _client(cached, make_token) as catalog:
        word = catalog.unique_word()
        edited = await catalog.create(title=f"Cached Before {word}")
        untouched = await catalog.create(title=f"Untouched {word}")
        await _replica_caught_up(catalog, infra)
        assert await _title(catalog, edited["id"]) == f"Cached Before {word}"  # cached now
        async with _replay_paused(infra):
            patched = await catalog.call(
                "PATCH",
                f"/books/{edited['id']}",
                token=catalog.admin(),
                payload={"title": f"Cached After {word}"},
            )
            assert patched.status == 200, patched.body
            # The invalidated entry is refilled for everyone, anonymous readers
            # included, and never from the replica that still has the old title.
            for token in (None, catalog.member(), catalog.admin()):
                assert await _title(catalog, edited["id"], token) == f"Cached After {word}"
            search = await catalog.call("GET", f"/search?q={word}")
            assert f"Cached After {word}" in {item["title"] for item in search.json()["items"]}
            # A book nobody wrote to is still filled from the replica.
            _, replica_before = await _reads(catalog)
            assert await _title(catalog, untouched["id"]) == f"Untouched {word}"
            assert (await _reads(catalog))[1] == replica_before + 1
        await _replica_caught_up(catalog, infra)
        assert await _title(catalog, edited["id"]) == f"Cached After {word}"


async def test_genre_statistics_show_a_new_book_once_refreshed(
    direct: RoutedCatalog, make_token: MakeToken
) -> None:
    async with _client(direct, make_token) as catalog:
        genre = f"G{catalog.unique_word()}"
        before = (await catalog.call("GET", "/stats/genres")).json()
        assert genre not in {item["genre"] for item in before["items"]}

        await catalog.create(genre=genre, total_copies=3, rating=4.0)
        await catalog.create(genre=genre, total_copies=2, rating=3.0)

        async def refreshed() -> bool:
            body = (await catalog.call("GET", "/stats/genres")).json()
            return any(
                item == {"genre": genre, "total_books": 2, "total_copies": 5, "avg_rating": 3.5}
                for item in body["items"]
            )

        await _eventually(refreshed, "the statistics to include the new books")
        after = (await catalog.call("GET", "/stats/genres")).json()
        assert datetime.fromisoformat(after["as_of"]) > datetime.fromisoformat(before["as_of"])
        assert await _metric(catalog, "bookvault_catalog_stats_refreshes_total") >= 1


async def test_search_uses_the_read_model_and_follows_edits_at_once(
    direct: RoutedCatalog, make_token: MakeToken
) -> None:
    async with _client(direct, make_token) as catalog:
        word, other = catalog.unique_word(), catalog.unique_word()
        admin = catalog.admin()
        # The genre is part of the read model's document (the live search knows only
        # title and author).
        book = await catalog.create(title="Harbour Lights", genre=f"G{word}")
        by_genre = await catalog.call("GET", f"/search?q=G{word}", token=admin)
        assert [item["id"] for item in by_genre.json()["items"]] == [book["id"]]

        patched = await catalog.call(
            "PATCH", f"/books/{book['id']}", token=admin, payload={"title": f"Harbour {other}"}
        )
        assert patched.status == 200
        renamed = await catalog.call("GET", f"/search?q={other}", token=admin)
        assert [item["title"] for item in renamed.json()["items"]] == [f"Harbour {other}"]

        assert (await catalog.call("DELETE", f"/books/{book['id']}", token=admin)).status == 204
        gone = await catalog.call("GET", f"/search?q={other}", token=admin)
        assert gone.json()["items"] == []
