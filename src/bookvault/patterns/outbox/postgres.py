"""The outbox table on PostgreSQL: writing events, relaying them, cleanup."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from typing import Any

from bookvault.patterns.outbox.events import Event
from bookvault.patterns.outbox.publisher import Publisher, PublishError

__all__ = ["SCHEMA", "Relay", "add_event", "backlog", "lock_aggregate", "purge_published"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction's id: rows are relayed in (txid, id) order, and
    -- only below the oldest running transaction (snapshot xmin).
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    topic text NOT NULL,
    event_type text NOT NULL,
    aggregate_id text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (txid, id) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Consumer side: event ids already handled, per consumer, written in the
-- same transaction as the handler's effect.
CREATE TABLE IF NOT EXISTS inbox (
    consumer text NOT NULL,
    event_id text NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX IF NOT EXISTS inbox_handled ON inbox (handled_at);
"""

_ADD = """
INSERT INTO outbox (topic, event_type, aggregate_id, payload) VALUES ($1, $2, $3, $4::jsonb)
RETURNING event_id::text
"""

_BATCH = """
SELECT id, event_id::text AS event_id, topic, event_type, aggregate_id, payload::text AS payload
  FROM outbox
 WHERE published_at IS NULL
   AND txid < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY txid, id
 LIMIT $1
   FOR UPDATE SKIP LOCKED
"""

_MARK = "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])"

_BACKLOG = """
SELECT count(*) AS pending, extract(epoch FROM now() - min(created_at))::float8 AS oldest_s
  FROM outbox WHERE published_at IS NULL
"""

_PURGE = """
DELETE FROM outbox
 WHERE ctid IN (SELECT ctid FROM outbox
                 WHERE published_at IS NOT NULL AND published_at < now() - $1::interval
                 LIMIT $2
                   FOR UPDATE SKIP LOCKED)
"""


def _lock_key(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\n".join(parts).encode()).digest()[:8], "big", signed=True)


_RELAY_LOCK = _lock_key("outbox-relay")


async def add_event(conn: Any, topic: str, event_type: str, aggregate_id: str, payload_json: str) -> str:
    """Insert an event in the caller's open transaction; return its event id."""
    event_id: str = await conn.fetchval(_ADD, topic, event_type, aggregate_id, payload_json)
    return event_id


async def lock_aggregate(conn: Any, aggregate_type: str, aggregate_id: str) -> None:
    """Serialise the writers of one aggregate until the transaction ends. Call it
    before the transaction's first write, so transaction ids (and so relay order)
    follow commit order for the aggregate."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1)", _lock_key("outbox-aggregate", aggregate_type, aggregate_id)
    )


async def backlog(conn: Any) -> tuple[int, float]:
    """(events not yet published, age in seconds of the oldest of them; 0 when none)."""
    row = await conn.fetchrow(_BACKLOG)
    return int(row["pending"]), float(row["oldest_s"] or 0.0)


async def purge_published(conn: Any, older_than: timedelta, batch_size: int = 1000) -> int:
    """Delete at most `batch_size` rows published more than `older_than` ago."""
    result: str = await conn.execute(_PURGE, older_than, batch_size)
    return int(result.rsplit(" ", 1)[-1])


# The relay's turn: one transaction at a time, bounded so a stalled relay (its
# process frozen, its broker black-holed) cannot hold the turn, or the watermark
# of every outbox on the cluster, for longer than this.
_TURN = """
SELECT pg_try_advisory_xact_lock($1) AS locked
  FROM (SELECT set_config('idle_in_transaction_session_timeout', $2, true)) AS bounded
"""


class Relay:
    """Moves committed outbox rows to a publisher, one batch per `relay_once`.

    A publish that takes longer than `publish_timeout` fails (PublishError) and
    the batch stays pending: the relay's transaction, which holds row locks and
    so a transaction id, never stays open on a broker that does not answer.
    """

    __slots__ = ("_batch_size", "_pool", "_publish_timeout_s", "_publisher")

    def __init__(
        self,
        pool: Any,
        publisher: Publisher,
        *,
        batch_size: int = 100,
        publish_timeout: timedelta = timedelta(seconds=10),
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if publish_timeout <= timedelta(0):
            raise ValueError(f"publish_timeout must be positive, got {publish_timeout}")
        self._pool = pool
        self._publisher = publisher
        self._batch_size = batch_size
        self._publish_timeout_s = publish_timeout.total_seconds()

    @property
    def batch_size(self) -> int:
        return self._batch_size

    async def relay_once(self) -> int:
        """Publish the next batch and mark it; return how many were published.

        0 when there is nothing below the watermark or another relay holds the
        turn. PublishError leaves the rows pending (the transaction rolls back).
        """
        async with self._pool.acquire() as conn, conn.transaction():
            # The session timeout is twice the publish timeout: it only ends a relay
            # whose process has stopped running, never a slow publish still in time.
            stall_ms = str(int(self._publish_timeout_s * 2000))
            if not await conn.fetchval(_TURN, _RELAY_LOCK, stall_ms):
                return 0
            rows = await conn.fetch(_BATCH, self._batch_size)
            if not rows:
                return 0
            events = [
                Event(r["event_id"], r["topic"], r["event_type"], r["aggregate_id"], r["payload"], r["id"])
                for r in rows
            ]
            try:
                async with asyncio.timeout(self._publish_timeout_s):
                    await self._publisher.publish(events)
            except TimeoutError as exc:
                raise PublishError(
                    f"publishing {len(events)} events took over {self._publish_timeout_s:g} s"
                ) from exc
            await conn.execute(_MARK, [r["id"] for r in rows])
            return len(rows)

    async def drain(self, max_batches: int = 1_000) -> int:
        """Relay batches until none is left (or `max_batches`); return how many events."""
        total = 0
        for _ in range(max_batches):
            done = await self.relay_once()
            if done == 0:
                break
            total += done
        return total
