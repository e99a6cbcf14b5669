"""Cached balances and summaries (switch `cache`) on the session's real PostgreSQL
and Redis.

End to end: two accounts processes of our own (granian, as the stack runs them)
with `cache` on. In process: the read side with a fake clock, for what needs time
to pass (VIP warming) or a load held half way (the stale-set race).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import aiohttp
import asyncpg
import pytest
from redis.asyncio import Redis
from tests.support.processes import Process, free_port

from bookvault.accounts.caching import AccountReads, SummaryInvalidator, account_reads
from bookvault.accounts.repo import AccountsRepo
from bookvault.accounts.schemas import Balance, MoneyMovement, NewMember, Summary, Tier
from bookvault.accounts.service import AccountsService
from bookvault.auth import Principal
from bookvault.config import Settings
from bookvault.patterns.cache import RedisBackend
from bookvault.patterns.clock import FakeClock

pytestmark = pytest.mark.stack

# How long an invalidation may take to reach the other process over pub/sub before
# the test calls it lost. Correctness with a bound, not a latency measurement.
_DELIVERY_DEADLINE_S = 10.0
_ADMIN = Principal("1", "admin")


@pytest.fixture(scope="module")
async def cached_accounts(
    system: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[str]]:
    """Two accounts processes with `cache` on, sharing the session's database and Redis."""
    workdir = tmp_path_factory.mktemp("accounts-cache")
    each = (dataclasses.replace(system, accounts_port=free_port(), cache=True) for _ in range(2))
    async with Process.running("accounts", each, workdir, "/readyz") as started:
        yield [process.url + "/api/accounts/v1" for process in started]


@dataclasses.dataclass
class Client:
    session: aiohttp.ClientSession
    make_token: Callable[..., str]

    async def call(self, method: str, url: str, payload: Any = None, key: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.make_token('1', 'admin')}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        async with self.session.request(method, url, json=payload, headers=headers) as resp:
            assert resp.status in (200, 201), await resp.text()
            return await resp.json()

    async def new_member(self, base: str, tier: str = "standard") -> int:
        email = f"cache-{uuid.uuid4().hex}@example.org"
        member = await self.call(
            "POST", base + "/members", {"name": "Cached Reader", "email": email, "tier": tier}
        )
        member_id: int = member["id"]
        return member_id

    async def move(self, base: str, member_id: int, kind: str, cents: int, key: str | None = None) -> Any:
        payload = {"amount_cents": cents, "currency": "USD"}
        return await self.call(
            "POST", f"{base}/members/{member_id}/{kind}s", payload, key or uuid.uuid4().hex
        )

    async def balance(self, base: str, member_id: int) -> int:
        cents: int = (await self.call("GET", f"{base}/members/{member_id}/balance"))["balance_cents"]
        return cents

    async def hits(self, base: str, cache: str) -> float:
        url = base.removesuffix("/api/accounts/v1") + "/metrics"
        async with self.session.get(url) as resp:
            text = await resp.text()
        total = 0.0
        for line in text.splitlines():
            if line.startswith("bookvault_cache_tier_hits_total{") and f'cache="{cache}"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total


@pytest.fixture
async def client(make_token: Callable[..., str]) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield Client(session, make_token)


async def _eventually(check: Callable[[], Awaitable[bool]], failure: str) -> None:
    deadline = time.monotonic() + _DELIVERY_DEADLINE_S
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(failure)
        await asyncio.sleep(0.01)  # waiting for pub/sub delivery, not timing an assertion


# --- end to end ------------------------------------------------------------------------


async def test_a_payment_is_in_the_next_balance_read_never_a_cached_one(
    cached_accounts: list[str], client: Client
) -> None:
    first, second = cached_accounts
    member = await client.new_member(first)
    await client.move(first, member, "payment", 1_000)
    hits_before = await client.hits(first, "accounts.balance")
    for base in (first, first, second, second):  # fill, then hits in both processes
        assert await client.balance(base, member) == 1_000
    assert await client.hits(first, "accounts.balance") >= hits_before + 1

    paid = await client.move(first, member, "payment", 250)
    assert paid["balance_after_cents"] == 1_250
    assert await client.balance(first, member) == 1_250  # the writing process: at once

    async def second_sees_it() -> bool:
        return await client.balance(second, member) == 1_250

    await _eventually(second_sees_it, "the other process kept serving the old balance")

    await client.move(second, member, "charge", 2_000)  # and the other way round
    assert await client.balance(second, member) == -750

    async def first_sees_it() -> bool:
        return await client.balance(first, member) == -750

    await _eventually(first_sees_it, "the first process kept serving the old balance")


async def test_a_summary_follows_every_charge(cached_accounts: list[str], client: Client) -> None:
    first, _ = cached_accounts
    member = await client.new_member(first)
    summary_url = f"{first}/members/{member}/summary"
    assert (await client.call("GET", summary_url))["transactions_count"] == 0
    assert (await client.call("GET", summary_url))["transactions_count"] == 0  # cached now
    await client.move(first, member, "charge", 300)
    summary = await client.call("GET", summary_url)
    assert summary["transactions_count"] == 1
    assert summary["total_charged_cents"] == 300


async def test_a_replayed_payment_changes_nothing_and_stays_consistent(
    cached_accounts: list[str], client: Client
) -> None:
    first, _ = cached_accounts
    member = await client.new_member(first)
    key = uuid.uuid4().hex
    await client.move(first, member, "payment", 400, key)
    assert await client.balance(first, member) == 400
    await client.move(first, member, "payment", 400, key)  # the same request again
    assert await client.balance(first, member) == 400


async def test_a_member_created_after_a_404_is_found_at_once(
    cached_accounts: list[str], client: Client
) -> None:
    first, _ = cached_accounts
    headers = {"Authorization": f"Bearer {client.make_token('1', 'admin')}"}
    # The next id does not exist yet; asking for it must not make it look missing later.
    newest = await client.new_member(first)
    async with client.session.get(f"{first}/members/{newest + 1}/balance", headers=headers) as resp:
        assert resp.status == 404
    created = await client.new_member(first)
    assert await client.balance(first, created) == 0


# --- in process, with a fake clock ---------------------------------------------------------


@pytest.fixture
async def pool(infra: Settings) -> AsyncIterator[asyncpg.Pool]:
    connections = await asyncpg.create_pool(infra.service_database_url("accounts"), min_size=1, max_size=4)
    yield connections
    await connections.close()


@pytest.fixture
async def redis_clients(infra: Settings) -> AsyncIterator[tuple[Redis, Redis]]:
    assert infra.redis_url is not None
    commands, listener = Redis.from_url(infra.redis_url), Redis.from_url(infra.redis_url)
    yield commands, listener
    await commands.aclose()
    await listener.aclose()


async def _read_side(
    pool: asyncpg.Pool,
    clients: tuple[Redis, Redis],
    clock: FakeClock,
    balance: Any = None,
    summary: Any = None,
    prefix: str | None = None,
) -> tuple[AccountsService, AccountReads]:
    # A key prefix of its own: the fake clock's entries must not meet the real processes'.
    prefix = prefix or f"cachetest-{uuid.uuid4().hex[:8]}"
    backend = RedisBackend(clients[0], prefix=prefix, pubsub_client=clients[1])
    reads = AccountReads(backend=backend, pool=pool, clock=clock)
    service = AccountsService(AccountsRepo(pool), after_commit=reads.changed)
    reads.serve(balance or service.balance, summary or service.summary)
    await reads.start(warm=False)
    return service, reads


async def _new_member(service: AccountsService, tier: Tier) -> int:
    member = await service.create_member(
        NewMember("Warm Reader", f"warm-{uuid.uuid4().hex}@example.org", tier)
    )
    return member.id


async def test_vip_balances_are_refreshed_ahead_of_expiry_and_others_are_not(
    pool: asyncpg.Pool, redis_clients: tuple[Redis, Redis]
) -> None:
    clock = FakeClock(wall_start=time.time())
    service, reads = await _read_side(pool, redis_clients, clock)
    try:
        vip, standard = await _new_member(service, "vip"), await _new_member(service, "standard")
        await reads.balance(vip, None)
        await reads.balance(standard, None)
        assert reads.balances is not None

        clock.advance(50)  # the entries live 54-66 s
        assert await reads.warm_vips() >= 1
        clock.advance(30)  # 80 s after the fill: the original entries are gone

        before = reads.balances.stats()
        await reads.balance(vip, None)
        after_vip = reads.balances.stats()
        # The VIP's balance: a fresh hit, neither loaded nor served past its expiry.
        assert after_vip.hits == before.hits + 1
        assert (after_vip.misses, after_vip.stale_serves) == (before.misses, before.stale_serves)
        await reads.balance(standard, None)
        after_standard = reads.balances.stats()
        # The standard member's had expired: not a fresh hit. (Redis, on the real clock,
        # still holds it, so it is served stale while reloading rather than missed.)
        assert after_standard.hits == after_vip.hits
        assert (
            after_standard.misses + after_standard.stale_serves
            == after_vip.misses + after_vip.stale_serves + 1
        )
    finally:
        await reads.aclose()


async def test_a_read_that_loaded_before_a_payment_cannot_cache_the_old_balance(
    pool: asyncpg.Pool, redis_clients: tuple[Redis, Redis]
) -> None:
    clock = FakeClock(wall_start=time.time())
    loaded, release = asyncio.Event(), asyncio.Event()
    holder: list[AccountsService] = []

    async def slow_balance(member_id: int, as_of: datetime | None) -> Balance:
        balance = await holder[0].balance(member_id, as_of)
        loaded.set()
        await release.wait()  # the old row is in hand; the payment commits meanwhile
        return balance

    service, reads = await _read_side(pool, redis_clients, clock, slow_balance)
    holder.append(service)
    try:
        member = await _new_member(service, "standard")
        reader = asyncio.create_task(reads.balance(member, None))
        await loaded.wait()
        await service.move(_ADMIN, member, "payment", uuid.uuid4().hex, MoneyMovement(500, "USD"))
        release.set()
        assert (await reader).balance_cents == 0  # that reader saw the state it started in...

        reads.serve(service.balance, service.summary)
        assert (await reads.balance(member, None)).balance_cents == 500  # ...but it was not kept
        assert reads.balances is not None
        assert reads.balances.stats().fill_rejections == 1
    finally:
        await reads.aclose()


async def test_a_summary_updated_elsewhere_is_dropped_by_the_summary_invalidator(
    pool: asyncpg.Pool, redis_clients: tuple[Redis, Redis]
) -> None:
    prefix = f"cachetest-{uuid.uuid4().hex[:8]}"
    model = {"count": 1}  # stands for an event-fed read model, updated outside the service

    async def summary(member_id: int) -> Summary:
        return Summary(member_id, 0, 100 * model["count"], model["count"], None, datetime.now().astimezone())

    _, reads = await _read_side(
        pool, redis_clients, FakeClock(wall_start=time.time()), summary=summary, prefix=prefix
    )
    invalidator = SummaryInvalidator(RedisBackend(redis_clients[0], prefix=prefix))
    try:
        assert (await reads.summary(77)).transactions_count == 1
        model["count"] = 2  # the consumer applied an event...
        assert (await reads.summary(77)).transactions_count == 1  # ...the cache does not know yet
        await invalidator.changed(77)  # ...until the consumer says so after its commit

        deadline = time.monotonic() + _DELIVERY_DEADLINE_S
        while (await reads.summary(77)).transactions_count != 2:
            assert time.monotonic() < deadline, "the cached summary was never dropped"
            await asyncio.sleep(0.01)  # waiting for pub/sub delivery, not timing an assertion
    finally:
        await invalidator.aclose()
        await reads.aclose()


async def test_with_cache_off_reads_go_straight_to_the_database(infra: Settings) -> None:
    reads = account_reads(dataclasses.replace(infra, cache=False))
    assert reads.caches() == {}
    calls: list[int] = []

    async def balance(member_id: int, as_of: datetime | None) -> Balance:
        calls.append(member_id)
        return Balance(member_id, 0, "USD", datetime.now().astimezone())

    async def summary(member_id: int) -> Any:
        raise AssertionError("not called")

    reads.serve(balance, summary)
    await reads.balance(7, None)
    await reads.balance(7, None)
    assert calls == [7, 7]
    await reads.aclose()
