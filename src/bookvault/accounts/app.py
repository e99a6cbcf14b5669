"""The accounts service: HTTP routes under /api/accounts/v1, and the lifespan
that opens its pool.

Who may do what: an admin anything; a member reads and pays only for themselves;
charges come from an admin or an internal service (e.g. late fees), never from a
member. Every response is `Cache-Control: private, no-store`: it is money data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import asyncpg
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bookvault.accounts.caching import AccountCacheCollector, AccountReads, account_reads
from bookvault.accounts.errors import AccountsError, EmailTaken, InvalidRequest, MemberNotFound
from bookvault.accounts.repo import AccountsRepo
from bookvault.accounts.schemas import Kind, MoneyMovement, NewMember
from bookvault.accounts.service import PREFIX, AccountsService
from bookvault.auth import Principal, TokenCodec
from bookvault.config import Settings, load_settings
from bookvault.db.pool import open_pool, register_pools
from bookvault.logs import configure_logging
from bookvault.patterns.idempotency import (
    Idempotency,
    IdempotencyError,
    KeyInFlight,
    RedisReplayCache,
    parse_key,
)
from bookvault.patterns.outbox import PublishError, RedisStreamsPublisher, Relay
from bookvault.web.app import create_service_app
from bookvault.web.observability import ReadinessCheck
from bookvault.web.problems import HTTPProblem, problem_response
from bookvault.web.responses import json_response
from bookvault.web.security import require_principal
from bookvault.web.validation import json_body, parse_id, query_datetime, query_int, reject_unknown_query

__all__ = ["PREFIX", "create_app"]

DEFAULT_PAGE_SIZE = 20
IN_FLIGHT_RETRY_AFTER_S = 1
# A replay looked up in Redis gives up after this long and asks the database instead.
REPLAY_CACHE_TIMEOUT_S = 0.25
# Maintenance runs this often: expired idempotency keys are deleted, this many per
# statement, and the ledger's monthly partitions are created this far ahead.
SWEEP_INTERVAL_S = 60.0
PARTITION_MONTHS_AHEAD = 3
# The outbox relay polls this often, publishes this many events per batch, and
# waits this long after the broker failed; published rows are kept this long.
RELAY_POLL_S = 0.1
RELAY_BATCH = 500
RELAY_BACKOFF_S = 1.0
OUTBOX_RETENTION = timedelta(hours=24)
SWEEP_BATCH = 1000
SWEEP_MAX_BATCHES = 100
_PRIVATE = {"Cache-Control": "private, no-store"}
_REPLAYED = {**_PRIVATE, "Idempotent-Replayed": "true"}
_log = logging.getLogger(__name__)
_BALANCE_QUERY = frozenset({"as_of"})
_HISTORY_QUERY = frozenset({"limit", "cursor", "from", "to"})
_STATUS: dict[type[AccountsError], int] = {
    InvalidRequest: 400,
    MemberNotFound: 404,
    EmailTaken: 409,
}


def _accounts(request: Request) -> AccountsService:
    service: AccountsService = request.app.state.accounts
    return service


def _reads(request: Request) -> AccountReads:
    reads: AccountReads = request.app.state.account_reads
    return reads


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
    return json_response(await _reads(request).balance(member_id, as_of), headers=_PRIVATE)


async def _move(request: Request, kind: Kind) -> Response:
    principal, member_id = _member_scope(request)
    if kind == "charge" and not principal.is_privileged:
        raise HTTPProblem(403, "charges are made by an admin or an internal service")
    key = parse_key(request.headers.get("idempotency-key"))
    body = await json_body(request, MoneyMovement)
    outcome = await _accounts(request).move(principal, member_id, kind, key, body)
    stored = outcome.response
    response = Response(stored.body, status_code=stored.status)
    for name, value in stored.headers:
        response.headers.append(name, value)
    response.headers.update(_REPLAYED if outcome.replayed else _PRIVATE)
    return response


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
    return json_response(await _reads(request).summary(member_id), headers=_PRIVATE)


async def _on_accounts_error(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, AccountsError):  # Starlette dispatches by type; this narrows it
        raise exc
    return problem_response(HTTPProblem(_STATUS.get(type(exc), 400), str(exc), headers=_PRIVATE))


async def _on_idempotency_error(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, IdempotencyError):
        raise exc
    headers = dict(_PRIVATE)
    if isinstance(exc, KeyInFlight):
        headers["Retry-After"] = str(exc.retry_after_s)
    return problem_response(HTTPProblem(exc.status, str(exc), headers=headers))


async def _maintain(repo: AccountsRepo) -> None:
    """One maintenance round: future ledger partitions, then expired keys in bounded batches."""
    await repo.ensure_partitions(PARTITION_MONTHS_AHEAD)
    for _ in range(SWEEP_MAX_BATCHES):
        if await repo.sweep_idempotency_keys(SWEEP_BATCH) < SWEEP_BATCH:
            break
    for _ in range(SWEEP_MAX_BATCHES):
        if await repo.purge_outbox(OUTBOX_RETENTION, SWEEP_BATCH) < SWEEP_BATCH:
            break


async def _maintain_forever(repo: AccountsRepo) -> None:
    """Maintenance for as long as the app runs; the first round is at startup."""
    while True:
        try:
            await _maintain(repo)
        except (asyncpg.PostgresError, OSError):  # the next round retries
            _log.warning("accounts maintenance failed", exc_info=True)
        await asyncio.sleep(SWEEP_INTERVAL_S)


async def _relay_forever(relay: Relay) -> None:
    """Publish committed account events for as long as the app runs. When Redis
    is down the events wait in the outbox (writes still succeed) and drain after."""
    while True:
        try:
            await relay.drain()
        except (PublishError, asyncpg.PostgresError, OSError):
            _log.warning("relaying account events failed; retrying", exc_info=True)
            await asyncio.sleep(RELAY_BACKOFF_S)
            continue
        # A relay that stops would strand every later event: log it and go on.
        except Exception:  # noqa: BLE001
            _log.exception("relaying account events failed unexpectedly; retrying")
            await asyncio.sleep(RELAY_BACKOFF_S)
            continue
        await asyncio.sleep(RELAY_POLL_S)


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
            redis = aioredis.from_url(settings.redis_url) if settings.redis_url else None
            # The replay fast path must never slow a payment down: short timeouts, then the database.
            replay_redis = (
                aioredis.from_url(
                    settings.redis_url,
                    socket_timeout=REPLAY_CACHE_TIMEOUT_S,
                    socket_connect_timeout=REPLAY_CACHE_TIMEOUT_S,
                )
                if settings.redis_url
                else None
            )
            repo = AccountsRepo(pool, RedisReplayCache(replay_redis) if replay_redis is not None else None)
            app.state.repo = repo
            # Balance and summary caches (switch `cache`), invalidated after each commit.
            reads = account_reads(settings, pool)
            service = AccountsService(repo, Idempotency(retry_after_s=IN_FLIGHT_RETRY_AFTER_S), reads.changed)
            reads.serve(service.balance, service.summary)
            app.state.accounts = service
            app.state.account_reads = reads
            app.state.registry.register(AccountCacheCollector(reads))
            await reads.start()
            tasks = [asyncio.create_task(_maintain_forever(repo), name="accounts-maintenance")]
            if redis is not None:
                relay = Relay(pool, RedisStreamsPublisher(redis), batch_size=RELAY_BATCH)
                tasks.append(asyncio.create_task(_relay_forever(relay), name="accounts-outbox-relay"))
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await reads.aclose()
                if redis is not None:
                    await redis.aclose()
                if replay_redis is not None:
                    await replay_redis.aclose()
        finally:
            await pool.close()

    def readiness(app: Starlette) -> Sequence[ReadinessCheck]:
        repo: AccountsRepo = app.state.repo

        async def database() -> None:
            await repo.ping()

        return [database]

    app = create_service_app("accounts", ROUTES, lifespan, readiness)
    app.add_exception_handler(AccountsError, _on_accounts_error)
    app.add_exception_handler(IdempotencyError, _on_idempotency_error)
    return app
