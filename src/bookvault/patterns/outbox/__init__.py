"""Transactional outbox: events written in the business transaction, relayed
to a broker at least once and in commit order, deduplicated by the consumer.

* `add_event(conn, ...)` inserts into the `outbox` table (`SCHEMA`) on the
  caller's connection, inside the business transaction: the event exists if
  and only if the write committed.
* `Relay.relay_once()` publishes one batch. Rows are taken in (txid, id) order
  and only below the snapshot's xmin (the watermark): every transaction older
  than xmin has ended, so no row can still appear before the batch, and a row
  committed late is never skipped (rows are marked published, not passed by a
  cursor). Batches are `FOR UPDATE SKIP LOCKED` and serialised by an advisory
  lock, so relays in several processes are safe and order is kept. A relay
  killed after publishing and before committing republishes at most one batch.
* Publishers implement `Publisher`; `RedisStreamsPublisher` XADDs to a stream
  per topic. SQS/Kafka/NATS adapters plug in the same way.
* `StreamConsumer` reads a Redis consumer group, claims messages stuck with a
  dead consumer (XAUTOCLAIM), and acks after handling. `PostgresInbox` records
  handled event ids in the handler's transaction, so effects happen once.
* `purge_published(conn, older_than, batch)` deletes old published rows in
  bounded batches.

Per-aggregate order follows from (txid, id) order when the writers of one
aggregate serialise before their first write (`lock_aggregate`), since a
transaction id is assigned at the first write.
"""

from __future__ import annotations

from bookvault.patterns.outbox.consumer import Delivery, PostgresInbox, StreamConsumer
from bookvault.patterns.outbox.events import Event
from bookvault.patterns.outbox.postgres import (
    SCHEMA,
    Relay,
    add_event,
    backlog,
    lock_aggregate,
    purge_published,
)
from bookvault.patterns.outbox.publisher import Publisher, PublishError, RedisStreamsPublisher

__all__ = [
    "SCHEMA",
    "Delivery",
    "Event",
    "PostgresInbox",
    "PublishError",
    "Publisher",
    "RedisStreamsPublisher",
    "Relay",
    "StreamConsumer",
    "add_event",
    "backlog",
    "lock_aggregate",
    "purge_published",
]
