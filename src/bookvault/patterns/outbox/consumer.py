"""The consumer side: a Redis Streams consumer group, and an inbox that makes
handling idempotent."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from redis.exceptions import ResponseError

from bookvault.patterns.outbox.events import Event

__all__ = ["Delivery", "PostgresInbox", "StreamConsumer"]

_PURGE = """
DELETE FROM inbox
 WHERE ctid IN (SELECT ctid FROM inbox
                 WHERE consumer = $1 AND handled_at < now() - $2::interval
                 LIMIT $3
                   FOR UPDATE SKIP LOCKED)
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    event: Event
    message_id: str
    claimed: bool


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class StreamConsumer:
    """One consumer of a group on one stream: at-least-once delivery.

    A message is acked only after `handler` returns, so a consumer that dies
    mid-handling leaves it pending; after `claim_idle_ms` another consumer takes
    it over with XAUTOCLAIM. Handlers must therefore be idempotent (see
    PostgresInbox).
    """

    __slots__ = ("_claim_idle_ms", "_count", "_group", "_handler", "_name", "_redis", "_stream", "_topic")

    def __init__(
        self,
        redis: Any,
        *,
        stream: str,
        topic: str,
        group: str,
        name: str,
        handler: Callable[[Delivery], Awaitable[None]],
        count: int = 100,
        claim_idle_ms: int = 30_000,
    ) -> None:
        self._redis = redis
        self._stream = stream
        self._topic = topic
        self._group = group
        self._name = name
        self._handler = handler
        self._count = count
        self._claim_idle_ms = claim_idle_ms

    async def ensure_group(self) -> None:
        """Create the group at the start of the stream (and the stream) unless it exists."""
        try:
            await self._redis.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def lag(self) -> int:
        """Messages not yet delivered to the group plus those delivered and not acked."""
        for group in await self._redis.xinfo_groups(self._stream):
            info = {_text(k): v for k, v in group.items()}
            if _text(info["name"]) == self._group:
                return int(info.get("lag") or 0) + int(info["pending"])
        return 0

    async def leave(self) -> bool:
        """Remove this consumer from the group when it holds no pending message
        (a clean shutdown); one holding messages stays, so they can be claimed."""
        mine = await self._redis.xpending_range(
            self._stream, self._group, min="-", max="+", count=1, consumername=self._name
        )
        if mine:
            return False
        await self._redis.xgroup_delconsumer(self._stream, self._group, self._name)
        return True

    async def consume_once(self, block_ms: int | None = None) -> int:
        """Handle stuck messages claimed from dead consumers, then new ones; return how many were acked.

        Acks go in one XACK per batch (not one round trip per message); when a
        handler raises, the messages handled before it are still acked and the
        rest stay pending, to be claimed again.
        """
        handled: list[Any] = []
        try:
            claimed = await self._redis.xautoclaim(
                self._stream, self._group, self._name, self._claim_idle_ms, start_id="0-0", count=self._count
            )
            for message_id, fields in claimed[1]:
                if fields is not None:
                    await self._handle(message_id, fields, claimed=True)
                    handled.append(message_id)
            if handled:
                # Claimed work first: ack it before blocking for new messages.
                await self._redis.xack(self._stream, self._group, *handled)
                acked, handled = len(handled), []
            else:
                acked = 0
            read = await self._redis.xreadgroup(
                self._group, self._name, {self._stream: ">"}, count=self._count, block=block_ms
            )
            for _stream, messages in read or []:
                for message_id, fields in messages:
                    await self._handle(message_id, fields, claimed=False)
                    handled.append(message_id)
        finally:
            if handled:
                await self._redis.xack(self._stream, self._group, *handled)
        return acked + len(handled)

    async def _handle(self, message_id: Any, fields: dict[Any, Any], *, claimed: bool) -> None:
        event = Event.from_fields(self._topic, {_text(k): _text(v) for k, v in fields.items()})
        await self._handler(Delivery(event, _text(message_id), claimed))


class PostgresInbox:
    """Event ids a consumer has handled, in table `inbox`. Call `first_time` in
    the transaction that applies the event's effect: it returns False for an
    event already handled (the effect must then be skipped), and concurrent
    duplicates wait for each other instead of both applying."""

    __slots__ = ("_consumer",)

    def __init__(self, consumer: str) -> None:
        self._consumer = consumer

    async def purge(self, conn: Any, older_than: timedelta, batch_size: int = 1000) -> int:
        """Forget at most `batch_size` of this consumer's ids handled more than
        `older_than` ago (keep them longer than any redelivery can come late)."""
        result: str = await conn.execute(_PURGE, self._consumer, older_than, batch_size)
        return int(result.rsplit(" ", 1)[-1])

    async def first_time(self, conn: Any, event_id: str) -> bool:
        inserted = await conn.fetchval(
            "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
            self._consumer,
            event_id,
        )
        return bool(inserted)
