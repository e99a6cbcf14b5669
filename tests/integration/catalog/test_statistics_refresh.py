"""The genre statistics view and its debounced refresh, on the session's PostgreSQL,
with a fake clock: no test waits for the debounce."""

from __future__ import annotations

import asyncpg
import pytest

from bookvault.catalog.schemas import GenreStats, NewBook
from bookvault.catalog.seed import seed_books
from bookvault.catalog.service import CatalogService
from bookvault.catalog.statistics import StatisticsRefresher
from bookvault.config import Settings, with_database
from bookvault.db.migrations import apply, ensure_database
from bookvault.patterns.clock import FakeClock

from .conftest import Catalog, new_isbn

pytestmark = pytest.mark.stack


def _book(genre: str, copies: int, rating: float | None) -> NewBook:
    return NewBook(
        isbn=new_isbn(),
        title="Counted Shelf",
        author="Ada Reed",
        genre=genre,
        published_year=2001,
        total_copies=copies,
        rating=rating,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def refresher(catalog_pool: asyncpg.Pool[asyncpg.Record], clock: FakeClock) -> StatisticsRefresher:
    return StatisticsRefresher(catalog_pool, quiet_s=2.0, max_delay_s=10.0, clock=clock)


@pytest.fixture
def service(
    catalog_pool: asyncpg.Pool[asyncpg.Record], refresher: StatisticsRefresher, clock: FakeClock
) -> CatalogService:
    return CatalogService(catalog_pool, clock=clock, read_models=True, on_edit=refresher.book_changed)


async def _stats(service: CatalogService, genre: str) -> GenreStats | None:
    report = await service.genre_stats()
    return next((item for item in report.items if item.genre == genre), None)


async def test_stats_reflect_a_new_book_after_the_refresh_and_not_before(
    service: CatalogService, refresher: StatisticsRefresher, clock: FakeClock
) -> None:
    genre = f"G{Catalog.unique_word()}"
    before = await service.genre_stats()
    await service.create_book(_book(genre, 3, 4.0))
    await service.create_book(_book(genre, 2, 3.25))

    assert await _stats(service, genre) is None  # the view still has the old figures
    assert await refresher.refresh_if_due() is False  # edits are not quiet yet
    clock.advance(2.0)
    assert await refresher.refresh_if_due() is True

    assert await _stats(service, genre) == GenreStats(genre, 2, 5, 3.63)
    after = await service.genre_stats()
    assert after.as_of > before.as_of
    assert await refresher.refresh_if_due() is False  # nothing changed since


async def test_a_steady_stream_of_edits_cannot_postpone_the_refresh_past_the_max_delay(
    service: CatalogService, refresher: StatisticsRefresher, clock: FakeClock
) -> None:
    genre = f"G{Catalog.unique_word()}"
    refreshed_after = None
    for second in range(1, 15):
        await service.create_book(_book(genre, 1, None))
        clock.advance(1.0)  # never quiet for 2 s
        if await refresher.refresh_if_due():
            refreshed_after = second
            break
    assert refreshed_after == 10
    stats = await _stats(service, genre)
    assert stats is not None
    assert stats.total_books == 10
    assert stats.avg_rating is None


async def test_the_live_statistics_stay_the_baseline(
    catalog_pool: asyncpg.Pool[asyncpg.Record], clock: FakeClock
) -> None:
    live = CatalogService(catalog_pool, clock=clock)
    genre = f"G{Catalog.unique_word()}"
    await live.create_book(_book(genre, 4, 5.0))
    report = await live.genre_stats()
    assert GenreStats(genre, 1, 4, 5.0) in report.items
    assert report.as_of.timestamp() == clock.time()


async def test_a_failed_refresh_is_retried_after_the_next_quiet_period(
    service: CatalogService, clock: FakeClock
) -> None:
    broken = await asyncpg.create_pool("postgresql://nobody@127.0.0.1:1/none", min_size=0, max_size=1)
    try:
        refresher = StatisticsRefresher(broken, quiet_s=2.0, max_delay_s=10.0, clock=clock)
        refresher.book_changed()
        clock.advance(2.0)
        assert await refresher.refresh_if_due() is False
        assert refresher.failures == 1
        assert refresher.pending
        assert refresher.due_in() == 2.0
    finally:
        await broken.close()


async def test_a_seeded_catalog_comes_with_its_read_models_built(infra: Settings) -> None:
    assert infra.database_url is not None
    await ensure_database(infra.database_url, "catalog_read_models_test")
    dsn = with_database(infra.database_url, "catalog_read_models_test")
    await apply(dsn, "catalog")
    await seed_books(dsn, 500, 3, lambda _done, _total: None)
    pool: asyncpg.Pool[asyncpg.Record] = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        service = CatalogService(pool, read_models=True)
        stats = await service.genre_stats()
        assert sum(item.total_books for item in stats.items) == 500
        live = await CatalogService(pool).genre_stats()
        assert stats.items == live.items
        genre = stats.items[0].genre
        # The search model was built for the copied rows too: a genre word finds its books.
        found = await service.search(genre, 100)
        assert genre in {book.genre for book in found.items}
    finally:
        await pool.close()
