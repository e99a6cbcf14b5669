"""Deterministic synthetic members for demos and benchmarks.

The same (count, seed) always gives the same members: ids 1..count (so
`bookvault token --member 42` names a seeded member), exactly 5% `vip`, unique
emails, and an opening balance for some of them. Every opening balance is also
a ledger payment, so the balance equals the ledger from the first moment.

Seeding REPLACES all accounts data: members, balances and the ledger are
truncated (identities restarted) and loaded again in one transaction, so a
failed load leaves the previous data in place. Afterwards the member id
sequence continues after the seeded ids.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice

import asyncpg

__all__ = ["SeedMember", "seed_members", "synthetic_members"]

CHUNK_SIZE = 2_000
VIP_SHARE = 0.05
OPENING_BALANCE_SHARE = 0.25
SEED_KEY = "seed-opening-balance"
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_SPAN = timedelta(days=365)

_FIRST_NAMES = (
    "Ada", "Alan", "Amara", "Bea", "Carlos", "Chen", "Dara", "Elif", "Emil", "Farah", "Grace", "Hana",
    "Ines", "Ivan", "Jonas", "Kemal", "Lena", "Luis", "Maya", "Mei", "Nadia", "Omar", "Priya", "Quinn",
    "Rosa", "Sami", "Tariq", "Uma", "Vera", "Wen", "Yara", "Zoe",
)  # fmt: skip
_LAST_NAMES = (
    "Abara", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Petrov", "Quispe", "Rossi", "Silva", "Tanaka",
    "Usman", "Varga", "Weber", "Xu", "Yilmaz", "Zhang",
)  # fmt: skip

_MEMBER_COLUMNS = ("id", "name", "email", "tier", "created_at")
_BALANCE_COLUMNS = ("member_id", "balance_cents", "currency", "updated_at")
_LEDGER_COLUMNS = (
    "member_id", "kind", "amount_cents", "currency", "balance_after_cents", "created_at",
    "idempotency_key", "request_fingerprint",
)  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class SeedMember:
    id: int
    name: str
    email: str
    tier: str
    created_at: datetime
    opening_cents: int
    opened_at: datetime


def synthetic_members(count: int, seed: int) -> Iterator[SeedMember]:
    """The members `seed_members` loads, in id order."""
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    rng = random.Random(seed)
    vip_ids = frozenset(rng.sample(range(1, count + 1), round(count * VIP_SHARE)))
    step = _SPAN / max(count, 1)
    for member_id in range(1, count + 1):
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        # Spread over a year and rising with the id (the jitter stays under half a step).
        created_at = _EPOCH + step * (member_id - 1 + rng.random() / 2)
        opening = rng.randint(5, 200) * 100 if rng.random() < OPENING_BALANCE_SHARE else 0
        yield SeedMember(
            id=member_id,
            name=f"{first} {last}",
            email=f"{first}.{last}.{member_id}@example.org".lower(),
            tier="vip" if member_id in vip_ids else "standard",
            created_at=created_at,
            opening_cents=opening,
            opened_at=created_at + timedelta(minutes=rng.randrange(1, 24 * 60)),
        )


def _chunks(members: Iterator[SeedMember], size: int) -> Iterator[Sequence[SeedMember]]:
    while chunk := list(islice(members, size)):
        yield chunk


async def seed_members(dsn: str, count: int, seed: int, progress: Callable[[int, int], None]) -> int:
    """Replace all accounts data with `count` synthetic members; return how many
    were loaded. `progress(done, total)` is called after each chunk."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                "TRUNCATE idempotency_keys, transactions, balances, members RESTART IDENTITY CASCADE"
            )
            # Monthly ledger partitions for the whole synthetic history, not only the default one.
            await conn.execute("SELECT ensure_transaction_partitions(3, $1)", _EPOCH.date())
            done = 0
            progress(done, count)
            for chunk in _chunks(synthetic_members(count, seed), CHUNK_SIZE):
                await _load(conn, chunk)
                done += len(chunk)
                progress(done, count)
            # Ids were given explicitly, so move the sequence past them for new members.
            await conn.execute(
                "SELECT setval(pg_get_serial_sequence('members', 'id'), $1, $2)", max(count, 1), count > 0
            )
        await conn.execute("ANALYZE members, balances, transactions")
    finally:
        await conn.close()
    return count


async def _load(conn: asyncpg.Connection, chunk: Sequence[SeedMember]) -> None:
    await conn.copy_records_to_table(
        "members",
        records=[(m.id, m.name, m.email, m.tier, m.created_at) for m in chunk],
        columns=_MEMBER_COLUMNS,
    )
    await conn.copy_records_to_table(
        "balances",
        records=[
            (m.id, m.opening_cents, "USD", m.opened_at if m.opening_cents else m.created_at) for m in chunk
        ],
        columns=_BALANCE_COLUMNS,
    )
    opened = [
        (m.id, "payment", m.opening_cents, "USD", m.opening_cents, m.opened_at, SEED_KEY, "seed")
        for m in chunk
        if m.opening_cents
    ]
    if opened:
        await conn.copy_records_to_table("transactions", records=opened, columns=_LEDGER_COLUMNS)
