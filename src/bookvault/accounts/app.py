"""The accounts service: HTTP routes under /api/accounts/v1, and the lifespan
that opens its pool.

Who may do what: an admin anything; a member reads and pays only for themselves;
charges come from an admin or an internal service (e.g. late fees), never from a
member. Every response is `Cache-Control: private, no-store`: it is money data.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bookvault.accounts.errors import (
    AccountsError,
    EmailTaken,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidRequest,
    MemberNotFound,
)
from bookvault.accounts.repo import AccountsRepo
from bookvault.accounts.schemas import Kind, MoneyMovement, NewMember
from bookvault.accounts.service import AccountsService, parse_idempotency_key
from bookvault.auth import Principal, TokenCodec
from bookvault.config import Settings, load_settings
from bookvault.db.pool import open_pool, register_pools
from bookvault.logs import configure_logging
from bookvault.web.app import create_service_app
from bookvault.web.observability import ReadinessCheck
from bookvault.web.problems import HTTPProblem, problem_response
from bookvault.web.responses import json_response
from bookvault.web.security import require_principal
from bookvault.web.validation import json_body, parse_id, query_datetime, query_int, reject_unknown_query

__all__ = ["PREFIX", "create_app"]

PREFIX = "/api/accounts/v1"
DEFAULT_PAGE_SIZE = 20
IN_FLIGHT_RETRY_AFTER_S = "1"
_PRIVATE = {"Cache-Control": "private, no-store"}
_REPLAYED = {**_PRIVATE, "Idempotent-Replayed": "true"}
_BALANCE_QUERY = frozenset({"as_of"})
_HISTORY_QUERY = frozenset({"limit", "cursor", "from", "to"})
_STATUS: dict[type[AccountsError], int] = {
    InvalidRequest: 400,
    MemberNotFound: 404,
    EmailTaken: 409,
    IdempotencyKeyInFlight: 409,
    IdempotencyKeyReused: 422,
}


def _accounts(request: Request) -> AccountsService:
    service: AccountsService = request.app.state.accounts
    return service


def _member_scope(request: Request) -> tuple[Principal, int]:
    """The caller and the member in the path, checked in the order a client fixes
    them: credentials (401), then the id (400), then the right to it (403)."""
    principal = require_principal(request)
    member_id = parse_id(request.path_params["member_id"], "member id")
    if not principal.may_act_for(member_id):
        raise HTTPProblem(403, "members may only access their own account")
    return principal, member_id


async def create_member(request: Request) -> Response:
    require_principal(request, "admin")
    new = await json_body(request, NewMember)
    member = await _accounts(request).create_member(new)
    return json_response(
        member, status=201, headers={**_PRIVATE, "Location": f"{PREFIX}/members/{member.id}"}
    )


async def get_member(request: Request) -> Response:
    _, member_id = _member_scope(request)
    return json_response(await _accounts(request).member(member_id), headers=_PRIVATE)


async def get_balance(request: Request) -> Response:
    _, member_id = _member_scope(request)
    reject_unknown_query(request.query_params, _BALANCE_QUERY)
    as_of = query_datetime(request.query_params, "as_of")
    return json_response(await _accounts(request).balance(member_id, as_of), headers=_PRIVATE)


async def _move(request: Request, kind: Kind) -> Response:
    principal, member_id = _member_scope(request)
    if kind == "charge" and not principal.is_privileged:
        raise HTTPProblem(403, "charges are made by an admin or an internal service")
    key = parse_idempotency_key(request.headers.get("idempotency-key"))
    body = await json_body(request, MoneyMovement)
    movement = await _accounts(request).move(principal, member_id, kind, key, body)
    return json_response(
        movement.transaction, status=201, headers=_REPLAYED if movement.replayed else _PRIVATE
    )


async def post_payment(request: Request) -> Response:
    return await _move(request, "payment")


async def post_charge(request: Request) -> Response:
    return await _move(request, "charge")


def _history_limit(request: Request) -> int:
    settings: Settings = request.app.state.settings
    return query_int(
        request.query_params,
        "limit",
        default=min(DEFAULT_PAGE_SIZE, settings.max_page_size),
        minimum=1,
        maximum=settings.max_page_size,
    )


async def list_transactions(request: Request) -> Response:
    _, member_id = _member_scope(request)
    query = request.query_params
    reject_unknown_query(query, _HISTORY_QUERY)
    page = await _accounts(request).transactions(
        member_id,
        limit=_history_limit(request),
        cursor=query.get("cursor") or None,
        start=query_datetime(query, "from"),
        end=query_datetime(query, "to"),
    )
    return json_response(page, headers=_PRIVATE)


async def get_summary(request: Request) -> Response:
    _, member_id = _member_scope(request)
    return json_response(await _accounts(request).summary(member_id), headers=_PRIVATE)


async def _on_accounts_error(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, AccountsError):  # Starlette dispatches by type; this narrows it
        raise exc
    status = _STATUS.get(type(exc), 400)
    headers = {"Retry-After": IN_FLIGHT_RETRY_AFTER_S} if isinstance(exc, IdempotencyKeyInFlight) else None
    return problem_response(HTTPProblem(status, str(exc), headers=headers))


ROUTES = [
    Route(f"{PREFIX}/members", create_member, methods=["POST"]),
    Route(f"{PREFIX}/members/{{member_id}}", get_member, methods=["GET"]),
    Route(f"{PREFIX}/members/{{member_id}}/balance", get_balance, methods=["GET"]),
    Route(f"{PREFIX}/members/{{member_id}}/payments", post_payment, methods=["POST"]),
    Route(f"{PREFIX}/members/{{member_id}}/charges", post_charge, methods=["POST"]),
    Route(f"{PREFIX}/members/{{member_id}}/transactions", list_transactions, methods=["GET"]),
    Route(f"{PREFIX}/members/{{member_id}}/summary", get_summary, methods=["GET"]),
]


def create_app(settings: Settings | None = None) -> Starlette:
    """The accounts app; granian serves it with `--factory bookvault.accounts.app:create_app`."""
    settings = settings or load_settings()
    configure_logging(settings.log_level, service="accounts")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.token_codec = TokenCodec(
            settings.resolved_jwt_secret(), settings.jwt_algorithm, settings.jwt_issuer
        )
        pool = await open_pool(
            settings.service_database_url("accounts"),
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            name="accounts",
        )
        try:
            register_pools(app.state.registry, {"accounts": pool})
            repo = AccountsRepo(pool)
            app.state.repo = repo
            app.state.accounts = AccountsService(repo)
            yield
        finally:
            await pool.close()

    def readiness(app: Starlette) -> Sequence[ReadinessCheck]:
        repo: AccountsRepo = app.state.repo

        async def database() -> None:
            await repo.ping()

        return [database]

    app = create_service_app("accounts", ROUTES, lifespan, readiness)
    app.add_exception_handler(AccountsError, _on_accounts_error)
    return app
