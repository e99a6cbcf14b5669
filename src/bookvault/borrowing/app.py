"""The borrowing service: HTTP routes, and the lifespan that wires its pool,
catalog client and reconciler.

Readiness: `/readyz` checks borrowing's own database only. A catalog outage
must not take borrowing out of rotation: it still lists loans and answers a
borrow with a clean 503 + Retry-After, which a client can act on, whereas an
unready instance only turns into gateway errors for everything. The catalog's
reachability is reported separately by `/readyz/catalog` and the
`bookvault_borrowing_catalog_up` gauge.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bookvault.auth import Principal, TokenCodec
from bookvault.borrowing.catalog_client import CatalogClient, CatalogError, ServiceToken, catalog_policy
from bookvault.borrowing.repo import PgLoanStore
from bookvault.borrowing.schemas import BorrowRequest, LoanList, ReturnRequest, loan_view
from bookvault.borrowing.service import (
    BookUnavailable,
    BookUnknown,
    BorrowingError,
    CatalogUnreachable,
    ListFilter,
    LoanNotActive,
    LoanNotFound,
    LoanPolicy,
    LoanService,
    NotYourLoan,
    run_reconciler,
)
from bookvault.config import Settings, load_settings
from bookvault.db.pool import open_pool, register_pools
from bookvault.logs import configure_logging
from bookvault.patterns.clock import SystemClock
from bookvault.web.app import create_service_app
from bookvault.web.observability import ReadinessCheck
from bookvault.web.problems import HTTPProblem
from bookvault.web.resilience import Guards
from bookvault.web.responses import json_response
from bookvault.web.security import require_member_access, require_principal
from bookvault.web.validation import (
    MAX_ID,
    json_body,
    path_id,
    query_choice,
    query_int,
    reject_unknown_query,
)

PREFIX = "/api/borrowing/v1"
RETRY_AFTER_S = 5
CATALOG_CONNECTIONS = 100
CATALOG_KEEPALIVE_S = 30.0
RECONCILE_INTERVAL_S = 5.0
DEFAULT_PAGE_SIZE = 50
_LIST_QUERY = frozenset({"status", "limit"})

# Each refusal's HTTP status, and its label in the outcome metrics.
_PROBLEMS: dict[type[BorrowingError], tuple[int, str]] = {
    BookUnavailable: (409, "no_copy"),
    BookUnknown: (404, "unknown_book"),
    CatalogUnreachable: (503, "catalog_unreachable"),
    LoanNotFound: (404, "unknown_loan"),
    NotYourLoan: (403, "forbidden"),
    LoanNotActive: (409, "not_active"),
}


def reconcile_min_age(settings: Settings) -> timedelta:
    """How old a pending loan must be before the reconciler takes it over: well
    past the longest a live borrow can take (a reserve, then a release, each
    bounded by the catalog timeout)."""
    return timedelta(seconds=max(30.0, 4 * settings.catalog_timeout_s))


def _refusal(exc: BorrowingError) -> tuple[int, str]:
    return _PROBLEMS.get(type(exc), (500, "error"))


def _problem(exc: BorrowingError) -> HTTPProblem:
    status, _ = _refusal(exc)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return HTTPProblem(status, str(exc), headers=headers)


def _member_id_of(principal: Principal) -> int | None:
    subject = principal.subject
    if subject.isascii() and subject.isdigit() and len(subject) <= 19 and 0 < int(subject) <= MAX_ID:
        return int(subject)
    return None


def _borrower(principal: Principal, body: BorrowRequest) -> int:
    """Whose loan this is: a member's own; an admin's choice, or their own id."""
    own = _member_id_of(principal)
    if principal.role == "admin":
        if body.member_id is not None:
            return body.member_id
        if own is None:
            raise HTTPProblem(422, "give member_id: the token's subject is not a member id")
        return own
    if own is None:
        raise HTTPProblem(403, "the token's subject is not a member id")
    if body.member_id not in (None, own):
        raise HTTPProblem(403, "members borrow for themselves; only an admin may set member_id")
    return own


def _loans(request: Request) -> LoanService:
    service: LoanService = request.app.state.loans
    return service


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.borrows = Counter(
            "bookvault_borrowing_borrows",
            "Borrow sagas by outcome",
            ["outcome"],
            registry=registry,
        )
        self.catalog_up = Gauge(
            "bookvault_borrowing_catalog_up",
            "1 when the last catalog call got an answer, 0 when it did not, -1 before any call",
            registry=registry,
        )


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    configure_logging(settings.log_level, service="borrowing")
    registry = CollectorRegistry()
    metrics = _Metrics(registry)
    guards = Guards(settings)
    registry.register(guards.collector())
    policy = LoanPolicy(loan_days=settings.loan_days, late_fee_cents_per_day=settings.late_fee_cents_per_day)

    async def borrow(request: Request) -> Response:
        principal = require_principal(request, "member", "admin")
        body = await json_body(request, BorrowRequest)
        member_id = _borrower(principal, body)
        try:
            loan = await _loans(request).borrow(member_id, body.book_id)
        except BorrowingError as exc:
            metrics.borrows.labels(_refusal(exc)[1]).inc()
            raise _problem(exc) from None
        metrics.borrows.labels("active").inc()
        return json_response(loan_view(loan), status=201, headers={"Location": f"{PREFIX}/loans/{loan.id}"})

    async def return_loan(request: Request) -> Response:
        loan_id = path_id(request, "loan_id")
        principal = require_principal(request)
        if await request.body():
            await json_body(request, ReturnRequest)
        try:
            loan = await _loans(request).return_loan(loan_id, principal)
        except BorrowingError as exc:
            raise _problem(exc) from None
        return json_response(loan_view(loan))

    async def member_loans(request: Request) -> Response:
        member_id = path_id(request, "member_id")
        require_member_access(request, member_id)
        query = request.query_params
        reject_unknown_query(query, _LIST_QUERY)
        # Without a filter a member sees every loan they hold or held.
        status = query_choice(query, "status", ("active", "all"), "all")
        which: ListFilter = "active" if status == "active" else "all"
        limit = query_int(
            query,
            "limit",
            default=min(DEFAULT_PAGE_SIZE, settings.max_page_size),
            minimum=1,
            maximum=settings.max_page_size,
        )
        loans = await _loans(request).list_loans(member_id, which, limit)
        return json_response(LoanList(items=[loan_view(loan) for loan in loans]))

    async def catalog_readiness(request: Request) -> Response:
        catalog: CatalogClient = request.app.state.catalog
        try:
            await catalog.ping()
        except CatalogError as exc:
            raise HTTPProblem(503, str(exc), title="Catalog Unreachable") from None
        return json_response({"catalog": "reachable"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        codec = TokenCodec(settings.resolved_jwt_secret(), settings.jwt_algorithm, settings.jwt_issuer)
        pool = await open_pool(
            settings.service_database_url("borrowing"),
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            name="borrowing",
        )
        try:
            register_pools(registry, {"borrowing": pool})
            connector = aiohttp.TCPConnector(limit=CATALOG_CONNECTIONS, keepalive_timeout=CATALOG_KEEPALIVE_S)
            async with aiohttp.ClientSession(connector=connector) as session:
                catalog = CatalogClient(
                    session,
                    settings.resolved_catalog_url(),
                    ServiceToken(codec),
                    settings.catalog_timeout_s,
                    catalog_policy(guards, settings),
                )
                metrics.catalog_up.set_function(
                    lambda: -1.0 if catalog.reachable is None else float(catalog.reachable)
                )
                store = PgLoanStore(pool)
                app.state.token_codec = codec
                app.state.pool = pool
                app.state.catalog = catalog
                app.state.loans = LoanService(store, catalog, policy)
                reconciler = asyncio.create_task(
                    run_reconciler(
                        store,
                        catalog,
                        clock=SystemClock(),
                        interval_s=RECONCILE_INTERVAL_S,
                        min_age=reconcile_min_age(settings),
                    ),
                    name="borrowing-reconciler",
                )
                try:
                    yield
                finally:
                    reconciler.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reconciler
        finally:
            await pool.close()

    def readiness(app: Starlette) -> Sequence[ReadinessCheck]:
        pool = app.state.pool

        async def database() -> None:
            await pool.fetchval("SELECT 1")

        return [database]

    routes = [
        Route(f"{PREFIX}/loans", borrow, methods=["POST"]),
        Route(f"{PREFIX}/loans/{{loan_id}}/return", return_loan, methods=["POST"]),
        Route(f"{PREFIX}/members/{{member_id}}/loans", member_loans, methods=["GET"]),
        Route("/readyz/catalog", catalog_readiness, methods=["GET"]),
    ]
    return create_service_app("borrowing", routes, lifespan, readiness, registry=registry)
