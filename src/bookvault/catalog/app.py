"""The catalog's HTTP surface: the public API under `/api/catalog/v1` and the
reservation API under `/internal` that only the borrowing service may call.

Run with `granian --interface asgi --factory bookvault.catalog.app:create_app`.
Handlers turn requests into typed values, call `CatalogService` and encode its
answer; domain errors become problem responses in one handler at the bottom.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bookvault.auth import Principal, TokenCodec
from bookvault.catalog.caching import CacheCollector, CatalogReads, catalog_reads
from bookvault.catalog.cursor import InvalidCursor, decode_cursor
from bookvault.catalog.errors import BookNotFound, CatalogConflict, CatalogError, InvalidBook
from bookvault.catalog.rules import has_unsafe_characters
from bookvault.catalog.schemas import (
    MAX_AUTHOR_LENGTH,
    MAX_GENRE_LENGTH,
    BookChanges,
    NewBook,
    ReservationRequest,
)
from bookvault.catalog.service import CatalogService
from bookvault.catalog.statistics import StatisticsCollector, StatisticsRefresher
from bookvault.config import Settings, load_settings
from bookvault.db.pool import open_pool, register_pools
from bookvault.db.replicas import RouterCollector, open_router
from bookvault.logs import configure_logging
from bookvault.patterns.db import ReadRouter
from bookvault.web.app import create_service_app
from bookvault.web.observability import ReadinessCheck
from bookvault.web.problems import HTTPProblem, problem_response
from bookvault.web.responses import json_response
from bookvault.web.security import principal_of, require_principal
from bookvault.web.validation import json_body, path_id, query_int, query_text, reject_unknown_query

__all__ = ["PREFIX", "create_app"]

PREFIX = "/api/catalog/v1"
DEFAULT_PAGE_SIZE = 20
MAX_QUERY_LENGTH = 200
MAX_RESERVATION_ID_LENGTH = 100
_LIST_PARAMS = frozenset({"genre", "author", "limit", "cursor"})
_SEARCH_PARAMS = frozenset({"q", "limit"})


def _catalog(request: Request) -> CatalogService:
    service: CatalogService = request.app.state.catalog
    return service


def _reads(request: Request) -> CatalogReads | None:
    """The cached/coalesced read side, or None when both switches are off."""
    reads: CatalogReads | None = request.app.state.reads
    return reads


def _key(principal: Principal | None) -> str | None:
    """The caller's read-your-writes key; anonymous callers write nothing, so None."""
    return None if principal is None else f"{principal.role}:{principal.subject}"


def _json_body(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def _max_page_size(request: Request) -> int:
    size: int = request.app.state.max_page_size
    return size


# --- input ----------------------------------------------------------------


def _query(request: Request, allowed: frozenset[str]) -> Mapping[str, str]:
    params = request.query_params
    reject_unknown_query(params, allowed)
    names = [name for name, _ in params.multi_items()]
    if len(names) != len(set(names)):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise HTTPProblem(400, f"query parameter(s) given more than once: {', '.join(repeated)}")
    return params


def _text_param(query: Mapping[str, str], name: str, max_length: int) -> str | None:
    value = query_text(query, name, max_length=max_length)
    if value is not None and has_unsafe_characters(value):
        raise HTTPProblem(400, f"{name} must not contain control characters")
    return value


def _limit(request: Request, query: Mapping[str, str]) -> int:
    return query_int(query, "limit", default=DEFAULT_PAGE_SIZE, minimum=1, maximum=_max_page_size(request))


# --- public API -------------------------------------------------------------


async def get_book(request: Request) -> Response:
    # The hot path: one query and one msgspec encode; with the cache on, a hit is an
    # in-process lookup of the already encoded body.
    principal = principal_of(request)  # anonymous is fine, a bad token is not
    book_id = path_id(request, "book_id")
    reads = _reads(request)
    if reads is not None:
        return _json_body(await reads.book_json(book_id))
    return json_response(await _catalog(request).get_book(book_id, after=_key(principal)))


async def list_books(request: Request) -> Response:
    principal = principal_of(request)
    query = _query(request, _LIST_PARAMS)
    genre = _text_param(query, "genre", MAX_GENRE_LENGTH)
    author = _text_param(query, "author", MAX_AUTHOR_LENGTH)
    limit = _limit(request, query)
    cursor = query.get("cursor")
    try:
        after_id = decode_cursor(cursor) if cursor else 0
    except InvalidCursor as exc:
        raise HTTPProblem(400, str(exc)) from None
    reads = _reads(request)
    if reads is not None:
        return _json_body(await reads.list_json(genre=genre, author=author, limit=limit, after_id=after_id))
    page = await _catalog(request).list_books(
        genre=genre, author=author, limit=limit, after_id=after_id, after=_key(principal)
    )
    return json_response(page)


async def search_books(request: Request) -> Response:
    principal = principal_of(request)
    query = _query(request, _SEARCH_PARAMS)
    text = _text_param(query, "q", MAX_QUERY_LENGTH)
    if text is None or not text.strip():
        raise HTTPProblem(400, "q is required: the words to look for in titles and authors")
    limit = _limit(request, query)
    reads = _reads(request)
    if reads is not None:
        return _json_body(await reads.search_json(text, limit))
    return json_response(await _catalog(request).search(text, limit, after=_key(principal)))


async def genre_stats(request: Request) -> Response:
    principal = principal_of(request)
    _query(request, frozenset())
    return json_response(await _catalog(request).genre_stats(after=_key(principal)))


async def create_book(request: Request) -> Response:
    principal = require_principal(request, "admin")
    book = await _catalog(request).create_book(await json_body(request, NewBook), principal=_key(principal))
    return json_response(book, status=201, headers={"Location": f"{PREFIX}/books/{book.id}"})


async def update_book(request: Request) -> Response:
    principal = require_principal(request, "admin")
    book_id = path_id(request, "book_id")
    changes = await json_body(request, BookChanges)
    return json_response(await _catalog(request).update_book(book_id, changes, principal=_key(principal)))


async def delete_book(request: Request) -> Response:
    principal = require_principal(request, "admin")
    await _catalog(request).delete_book(path_id(request, "book_id"), principal=_key(principal))
    return Response(status_code=204)


# --- internal API (borrowing) -------------------------------------------------


def _reservation_id(raw: str, where: str, status: int) -> str:
    if not 1 <= len(raw) <= MAX_RESERVATION_ID_LENGTH:
        raise HTTPProblem(status, f"{where} must be 1 to {MAX_RESERVATION_ID_LENGTH} characters")
    if has_unsafe_characters(raw):
        raise HTTPProblem(status, f"{where} must not contain control characters")
    return raw


async def reserve_copy(request: Request) -> Response:
    principal = require_principal(request, "service")
    book_id = path_id(request, "book_id")
    body = await json_body(request, ReservationRequest)
    reservation_id = _reservation_id(body.reservation_id, "reservation_id", 422)
    reservation, taken_now = await _catalog(request).reserve(
        book_id, reservation_id, principal=_key(principal)
    )
    return json_response(reservation, status=201 if taken_now else 200)


async def release_copy(request: Request) -> Response:
    principal = require_principal(request, "service")
    reservation_id = _reservation_id(request.path_params["reservation_id"], "the reservation id", 400)
    return json_response(await _catalog(request).release(reservation_id, principal=_key(principal)))


# --- wiring -------------------------------------------------------------------

ROUTES = [
    Route(f"{PREFIX}/books/{{book_id}}", get_book, methods=["GET"]),
    Route(f"{PREFIX}/books/{{book_id}}", update_book, methods=["PATCH"]),
    Route(f"{PREFIX}/books/{{book_id}}", delete_book, methods=["DELETE"]),
    Route(f"{PREFIX}/books", list_books, methods=["GET"]),
    Route(f"{PREFIX}/books", create_book, methods=["POST"]),
    Route(f"{PREFIX}/search", search_books, methods=["GET"]),
    Route(f"{PREFIX}/stats/genres", genre_stats, methods=["GET"]),
    Route("/internal/books/{book_id}/reservations", reserve_copy, methods=["POST"]),
    # `:path` so an id containing an encoded slash still reaches the handler.
    Route("/internal/reservations/{reservation_id:path}/release", release_copy, methods=["POST"]),
]


def _status_of(exc: CatalogError) -> int:
    if isinstance(exc, BookNotFound):
        return 404
    if isinstance(exc, CatalogConflict):
        return 409
    if isinstance(exc, InvalidBook):
        return 422
    return 400


async def _on_catalog_error(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, CatalogError):  # Starlette dispatches by type; this narrows it
        raise exc
    return problem_response(HTTPProblem(_status_of(exc), str(exc)))


@contextlib.asynccontextmanager
async def _read_side(
    app: Starlette, settings: Settings, pool: asyncpg.Pool
) -> AsyncIterator[tuple[ReadRouter | None, StatisticsRefresher | None]]:
    """The read router (switch `replicas`) and the statistics refresher (switch
    `materialized_views`), each with its metrics, for the app's lifespan."""
    async with contextlib.AsyncExitStack() as stack:
        router: ReadRouter | None = None
        if settings.pattern_on("replicas"):
            router = await stack.enter_async_context(open_router(settings, "catalog", pool))
            app.state.registry.register(RouterCollector(router))
        refresher: StatisticsRefresher | None = None
        if settings.pattern_on("materialized_views"):
            refresher = StatisticsRefresher(
                pool,
                quiet_s=settings.stats_refresh_quiet_s,
                max_delay_s=settings.stats_refresh_max_delay_s,
            )
            app.state.registry.register(StatisticsCollector(refresher))
            task = asyncio.get_running_loop().create_task(refresher.run())

            async def stop() -> None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

            stack.push_async_callback(stop)
        yield router, refresher


def create_app(settings: Settings | None = None) -> Starlette:
    """The catalog service; settings default to the environment (`BOOKVAULT_*`)."""
    settings = settings or load_settings()
    configure_logging(settings.log_level, "catalog")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The key is read first so a missing one stops startup before any connection is made.
        app.state.token_codec = TokenCodec(
            settings.resolved_jwt_secret(), settings.jwt_algorithm, settings.jwt_issuer
        )
        app.state.max_page_size = settings.max_page_size
        pool = await open_pool(
            settings.service_database_url("catalog"),
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            name="catalog",
            tuned=settings.pattern_on("tuned_pools"),
        )
        try:
            register_pools(app.state.registry, {"catalog": pool})
            app.state.pool = pool
            async with _read_side(app, settings, pool) as (router, refresher):

                def service_for(on_change: Callable[[int], Awaitable[None]] | None) -> CatalogService:
                    return CatalogService(
                        pool,
                        on_change=on_change,
                        router=router,
                        read_models=refresher is not None,
                        on_edit=refresher.book_changed if refresher is not None else None,
                    )

                async with catalog_reads(settings, service_for) as (service, reads, publisher):
                    app.state.catalog = service
                    app.state.reads = reads
                    if reads is not None:
                        app.state.registry.register(CacheCollector(reads, publisher))
                    yield
        finally:
            await pool.close()

    def readiness_checks(app: Starlette) -> Sequence[ReadinessCheck]:
        async def database() -> None:
            await app.state.pool.fetchval("SELECT 1")

        return (database,)

    app = create_service_app("catalog", ROUTES, lifespan, readiness_checks)
    app.add_exception_handler(CatalogError, _on_catalog_error)
    return app
