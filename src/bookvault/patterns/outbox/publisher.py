"""Where the relay publishes: the adapter interface, and Redis Streams."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from redis.exceptions import RedisError

from bookvault.patterns.outbox.events import Event

__all__ = ["PublishError", "Publisher", "RedisStreamsPublisher"]


class PublishError(Exception):
    """The broker did not take the batch; the relay keeps the rows and retries."""


class Publisher(Protocol):
    async def publish(self, events: Sequence[Event]) -> None:
        """Publish in the given order, all or raise PublishError (a partial
        publish is fine: the batch is published again, consumers dedup)."""
        ...


class RedisStreamsPublisher:
    """XADD each event to the stream `{prefix}{topic}`, in one pipelined round trip.

    `maxlen` trims streams approximately, so a stream never grows without bound.
    """

    __slots__ = ("_maxlen", "_prefix", "_redis")

    def __init__(self, redis: Any, *, prefix: str = "events:", maxlen: int = 1_000_000) -> None:
        self._redis = redis
        self._prefix = prefix
        self._maxlen = maxlen

    def stream(self, topic: str) -> str:
        return f"{self._prefix}{topic}"

    async def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            for event in events:
                pipe.xadd(self.stream(event.topic), event.fields(), maxlen=self._maxlen, approximate=True)
            await pipe.execute()
        except (RedisError, OSError) as exc:
            raise PublishError(f"publishing {len(events)} events failed: {exc}") from exc
