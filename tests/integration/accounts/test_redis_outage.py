"""Redis down while members pay: the payments still succeed (the events wait in the
outbox, in the same transactions), and once Redis is back the backlog drains to
zero with every member's events in the order their payments committed.

The session's accounts process is swapped, on the same port, for one that
reaches Redis through a fault proxy; it is the only relay of the accounts
outbox meanwhile."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from bookvault.config import Settings
from bookvault.faults import FaultProxy, Outage
from bookvault.patterns.outbox import backlog
from bookvault.stack.services import service_process, spec_for, wait_healthy
from bookvault.workers.backlog import event_backlog

if TYPE_CHECKING:
    from tests.integration.accounts.conftest import Accounts

pytestmark = pytest.mark.stack
_POLLS = 300


def _log(process: Any) -> str:
    """The end of the swapped service's log, to tell why an assertion failed."""
    text: str = process.log_path.read_text(errors="replace")
    return text[-12_000:]


def _through(redis_url: str, port: int) -> str:
    parts = urlsplit(redis_url)
    netloc = parts.netloc.rsplit(":", 1)[0] if parts.port is not None else parts.netloc
    return urlunsplit((parts.scheme, f"{netloc}:{port}", parts.path, parts.query, parts.fragment))


@pytest.fixture
def swap_accounts(system: Settings, local_stack: Any, system_control: Any) -> Iterator[Any]:
    """Call with a Redis URL: accounts restarts using it; the session's comes back after."""
    started: list[Any] = []

    def swap(redis_url: str) -> Any:
        system_control.stop_service("accounts")
        settings = dataclasses.replace(system, redis_url=redis_url)
        process = service_process(spec_for("accounts", settings), settings, local_stack.paths)
        process.name = "accounts-via-proxy"
        process.log_path = local_stack.paths.log("accounts-via-proxy")
        process.start()
        started.append(process)
        wait_healthy("accounts", f"{system.service_url('accounts')}/healthz", process)
        return process

    try:
        yield swap
    finally:
        for process in started:
            process.stop()
        system_control.start_service("accounts")


async def test_payments_succeed_while_redis_is_down_and_events_drain_in_order_after(
    accounts: Accounts, system: Settings, swap_accounts: Any
) -> None:
    assert system.redis_url is not None
    redis_port = urlsplit(system.redis_url).port
    assert redis_port is not None
    members = [await accounts.new_member() for _ in range(3)]
    async with FaultProxy(redis_port) as proxy:
        proxy.set(Outage())
        swapped = await asyncio.to_thread(swap_accounts, _through(system.redis_url, proxy.port))

        sent: dict[int, list[int]] = {m: [] for m in members}
        for n in range(30):
            member = members[n % 3]
            paid = await accounts.pay(member, 100 + n)
            assert paid.status == 201, (paid.body, _log(swapped))
            sent[member].append(paid.json()["id"])
        db = await asyncpg.connect(system.service_database_url("accounts"))
        try:
            ours = await db.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL AND aggregate_id = ANY($1::text[])",
                [str(m) for m in members],
            )
            assert ours == 30  # every payment's event waits in the outbox
            reported = {o["service"]: o for o in (await event_backlog(system))["outbox"]}
            assert reported["accounts"]["pending"] >= 30

            proxy.clear()  # Redis is back
            for _ in range(_POLLS):
                if (await backlog(db))[0] == 0:
                    break
                await asyncio.sleep(0.1)
            # What could hold the relay back: open transactions with an id (the
            # watermark), and advisory locks (the relay's turn).
            holders = await db.fetch(
                "SELECT a.datname, a.pid, a.state, a.backend_xid::text, a.xact_start::text, "
                "       l.objid::text AS advisory, left(a.query, 80) AS query "
                "  FROM pg_stat_activity a LEFT JOIN pg_locks l "
                "    ON l.pid = a.pid AND l.locktype = 'advisory' AND l.granted "
                " WHERE a.backend_xid IS NOT NULL OR l.pid IS NOT NULL"
            )
            assert (await backlog(db))[0] == 0, (
                [dict(r) for r in holders],
                _log(swapped),
            )
        finally:
            await db.close()

    client = aioredis.from_url(system.redis_url)
    try:
        entries: Any = await client.xrange("events:accounts")
    finally:
        await client.aclose()
    published: dict[int, list[int]] = {m: [] for m in members}
    for _id, fields in entries:
        member = int(fields[b"aggregate_id"])
        if member in published:
            published[member].append(json.loads(fields[b"payload"])["id"])
    # None lost, none twice, and per member in the order the payments were made.
    assert published == sent
