"""Tells the gateway's response cache which catalog responses a committed change
made wrong.

The contract (the gateway subscribes; this module only publishes):

* channel  `bookvault:purge` (Redis pub/sub, on the stack's Redis)
* message  UTF-8 JSON, exactly
  `{"paths": ["/api/catalog/v1/books/<id>"],
    "prefixes": ["/api/catalog/v1/books?", "/api/catalog/v1/search?", "/api/catalog/v1/stats/"]}`
  `paths` are request paths to drop whatever their query string; `prefixes` drop
  every cached response whose path plus `?query` starts with one of them (so a
  list, a search or a statistics page that could contain the book).
* when     after every commit that changes a book: create, update, delete, and a
  reservation taking or giving back a copy (its `available_copies` changed). Never
  before the commit: a response fetched in between would be cached again.
* delivery best effort, at most once. A failed publish is logged and counted
  (`bookvault_cache_purge_errors_total`) and never fails the write; the gateway's
  own TTLs bound how long a missed purge can matter.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = ["CHANNEL", "PREFIXES", "PurgePublisher", "purge_message"]

log = logging.getLogger(__name__)

CHANNEL = "bookvault:purge"
BOOK_PATH = "/api/catalog/v1/books/{book_id}"
PREFIXES: tuple[str, ...] = ("/api/catalog/v1/books?", "/api/catalog/v1/search?", "/api/catalog/v1/stats/")


class _Purge(msgspec.Struct, frozen=True):
    paths: list[str]
    prefixes: list[str]


_encode = msgspec.json.Encoder().encode


def purge_message(book_id: int) -> bytes:
    """The message published after `book_id` changed."""
    return _encode(_Purge(paths=[BOOK_PATH.format(book_id=book_id)], prefixes=list(PREFIXES)))


class PurgePublisher:
    """Publishes purge messages; `published` and `errors` count the outcomes."""

    __slots__ = ("_redis", "_timeout", "errors", "published")

    def __init__(self, redis: Redis, *, timeout: float = 0.25) -> None:
        self._redis = redis
        self._timeout = timeout
        self.published = 0
        self.errors = 0

    async def book_changed(self, book_id: int) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._redis.publish(CHANNEL, purge_message(book_id))
        except (TimeoutError, RedisError, OSError) as exc:
            self.errors += 1
            log.warning("purge of book %s not published: %s", book_id, exc)
        else:
            self.published += 1
