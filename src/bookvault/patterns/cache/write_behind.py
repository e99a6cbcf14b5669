"""Write-behind: acknowledge a write once it is durable in a Redis Stream, show it in
the cache at once, and apply it to the database later, in batches.

    queue = WriteBehindQueue(counters)              # writers
    await queue.write("book:42:views", 1031)         # returns after XADD: durable

    flusher = WriteBehindFlusher(counters, apply=save_batch)   # one or more workers
    await flusher.run(stop_event)

The queue is never only in memory. A write is acknowledged after XADD succeeds, then
staged in the cache (readers see it; fills are refused while it is pending, since the
database does not have it yet). Flushers consume with a consumer group: `apply`
receives a batch, and only after it returns are the entries XACKed (and deleted from
the stream) and the keys settled. A flusher that dies mid-batch leaves its entries
pending; any flusher claims them with XAUTOCLAIM once they have been idle for
`claim_idle` seconds. A writer that dies between XADD and staging loses nothing: the
flusher applies the write and, finding the cache never showed it, invalidates the key.

Delivery is at least once and, after a reclaim, possibly out of order: `apply` must
be idempotent and should ignore a write older than what the row holds, using
`PendingWrite.order` (stream ids increase with every enqueue). Entries delivered
`max_deliveries` times without success are moved to a dead-letter stream.

Durability is Redis's: against a crash of Redis itself, run it with AOF
(`appendfsync everysec` or `always`) and replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
from redis.exceptions import ResponseError

from .cache import Cache
from .errors import CacheBackendError, CacheConfigError
from .redis_backend import RedisBackend, call_redis
from .write_ids import write_id_order

__all__ = ["PendingWrite", "WriteBehindFlusher", "WriteBehindQueue", "WriteBehindStats"]

log = logging.getLogger(__name__)

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class PendingWrite(Generic[V]):
    id: str  # the stream id: later writes have greater ids
    key: str
    value: V

    @property
    def order(self) -> tuple[int, int]:
        """Compare with another write's to tell which was enqueued later."""
        return write_id_order(self.id)


@dataclass(slots=True)
class WriteBehindStats:
    enqueued: int = 0
    stage_failures: int = 0
    applied: int = 0
    batches: int = 0
    apply_failures: int = 0
    reclaimed: int = 0
    dead_lettered: int = 0


def _redis_of(cache: Cache[Any]) -> RedisBackend:
    backend = cache.backend
    if not isinstance(backend, RedisBackend):
        raise CacheConfigError(
            f"write-behind needs a durable queue: cache {cache.name!r} must use a RedisBackend, "
            f"not {type(backend).__name__}"
        )
    return backend


def _default_stream(cache: Cache[Any]) -> str:
    backend = _redis_of(cache)
    return f"{backend.prefix}:{{{cache.name}}}:writes"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class WriteBehindQueue(Generic[V]):
    """The writers' side: `write` returns once the write is durable."""

    def __init__(self, cache: Cache[V], *, stream: str | None = None) -> None:
        self._backend = _redis_of(cache)
        self._cache = cache
        self.stream = stream or _default_stream(cache)
        self.stats = WriteBehindStats()

    async def write(self, key: str, value: V) -> str:
        """Enqueue durably (raises `CacheBackendError` if it could not be), then show the
        value in the cache. Returns the write id."""
        backend = self._backend
        data = self._cache._codec.encode_value(value)
        write_id = _text(
            await call_redis(backend.client.xadd(self.stream, {"k": key, "v": data}), backend.timeout)
        )
        self.stats.enqueued += 1
        try:
            await self._cache._stage(key, value, write_id)
        except CacheBackendError as exc:
            # Durable all the same; the flusher invalidates the key once it is applied.
            self.stats.stage_failures += 1
            log.warning(
                "write-behind %s: write %s enqueued but not shown in the cache (%s)", key, write_id, exc
            )
        return write_id


Apply = Callable[[Sequence[PendingWrite[V]]], Awaitable[None]]


class WriteBehindFlusher(Generic[V]):
    """The workers' side: consume, apply, acknowledge; reclaim what crashed flushers left.

    apply           the database write for a batch; raise to leave the batch pending
    group           consumer group (created from the stream's start if missing)
    consumer        this flusher's name; defaults to host and pid
    batch_size      entries per batch
    block           seconds a read waits for new entries
    claim_idle      seconds an entry must sit unacknowledged before another flusher
                    takes it over; longer than `apply` ever takes
    max_deliveries  deliveries before an entry goes to the dead-letter stream
    coalesce        apply only the newest write per key within a batch
    """

    def __init__(
        self,
        cache: Cache[V],
        apply: Apply[V],
        *,
        stream: str | None = None,
        group: str = "flushers",
        consumer: str | None = None,
        batch_size: int = 100,
        block: float = 1.0,
        claim_idle: float = 30.0,
        max_deliveries: int = 5,
        coalesce: bool = True,
    ) -> None:
        if batch_size < 1 or block < 0 or claim_idle <= 0 or max_deliveries < 1:
            raise CacheConfigError("batch_size, claim_idle and max_deliveries must be positive, block >= 0")
        self._backend = _redis_of(cache)
        self._cache = cache
        self._apply = apply
        self.stream = stream or _default_stream(cache)
        self.dead_letters = self.stream + ":dead"
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._batch_size = batch_size
        self._block_ms = int(block * 1000)
        self._claim_idle_ms = max(1, int(claim_idle * 1000))
        self._claim_idle = claim_idle
        self._max_deliveries = max_deliveries
        self._coalesce = coalesce
        self._group_ready = False
        self.stats = WriteBehindStats()

    async def ensure_group(self) -> None:
        if self._group_ready:
            return
        client = self._backend.client
        try:
            await call_redis(
                client.xgroup_create(self.stream, self.group, id="0", mkstream=True), self._timeout
            )
        except CacheBackendError as exc:
            if not (isinstance(exc.__cause__, ResponseError) and "BUSYGROUP" in str(exc.__cause__)):
                raise
        self._group_ready = True

    @property
    def _timeout(self) -> float:
        return self._backend.timeout

    async def flush_once(self, *, block: float | None = None) -> int:
        """Read one batch of new entries (waiting up to `block` seconds) and apply it.
        Returns how many entries were applied."""
        await self.ensure_group()
        block_ms = self._block_ms if block is None else int(block * 1000)
        reply = await call_redis(
            self._backend.client.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=self._batch_size, block=block_ms or None
            ),
            self._timeout + block_ms / 1000,
        )
        return await self._process(_stream_entries(reply))

    async def reclaim(self) -> int:
        """Take over entries other flushers left pending for `claim_idle`, dead-letter
        those delivered too often, and apply the rest. Returns how many were applied."""
        await self.ensure_group()
        client = self._backend.client
        pending: list[dict[str, Any]] = await call_redis(
            client.xpending_range(
                self.stream, self.group, "-", "+", self._batch_size, idle=self._claim_idle_ms
            ),
            self._timeout,
        )
        poisoned = [p["message_id"] for p in pending if p["times_delivered"] >= self._max_deliveries]
        if poisoned:
            await self._dead_letter(poisoned)
        reply = await call_redis(
            client.xautoclaim(
                self.stream, self.group, self.consumer, self._claim_idle_ms, "0-0", count=self._batch_size
            ),
            self._timeout,
        )
        entries = reply[1] if reply else []
        self.stats.reclaimed += len(entries)
        return await self._process(entries)

    async def run(self, stop: asyncio.Event) -> None:
        """Flush until `stop` is set, reclaiming every `claim_idle / 2` seconds.
        Storage failures are logged and retried; they never end the loop."""
        loop = asyncio.get_running_loop()
        next_reclaim = loop.time()
        pause = 0.05
        while not stop.is_set():
            try:
                if loop.time() >= next_reclaim:
                    await self.reclaim()
                    next_reclaim = loop.time() + self._claim_idle / 2
                await self.flush_once()
                pause = 0.05
            except CacheBackendError as exc:
                log.warning("write-behind flusher %s: %s; retrying in %ss", self.consumer, exc, pause)
                self._group_ready = False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
                pause = min(pause * 2, 5.0)

    async def _process(self, entries: Sequence[tuple[Any, dict[Any, Any]]]) -> int:
        if not entries:
            return 0
        codec = self._cache._codec
        ids: list[str] = []
        writes: list[PendingWrite[V]] = []
        unreadable: list[str] = []
        for raw_id, fields in entries:
            write_id = _text(raw_id)
            try:
                key = _text(fields[b"k"] if b"k" in fields else fields["k"])
                data = fields[b"v"] if b"v" in fields else fields["v"]
                writes.append(PendingWrite(write_id, key, codec.decode_value(data)))
                ids.append(write_id)
            except (KeyError, msgspec.DecodeError, msgspec.ValidationError):
                unreadable.append(write_id)
        if unreadable:
            log.error("write-behind: entries %s cannot be read; moved to %s", unreadable, self.dead_letters)
            await self._dead_letter(unreadable)
        if not writes:
            return 0
        batch = _newest_per_key(writes) if self._coalesce else writes
        try:
            await self._apply(batch)
        except Exception:
            # Left pending: reclaimed and retried after claim_idle, dead-lettered eventually.
            self.stats.apply_failures += 1
            log.exception("write-behind: applying %d writes failed; they stay queued", len(batch))
            return 0
        await self._acknowledge(ids)
        self.stats.batches += 1
        self.stats.applied += len(writes)
        for write in _newest_per_key(writes):
            try:
                await self._cache._settle(write.key, write.id)
            except CacheBackendError as exc:
                log.warning("write-behind: could not settle %r after applying it (%s)", write.key, exc)
        return len(writes)

    async def _acknowledge(self, ids: Sequence[str]) -> None:
        pipe = self._backend.client.pipeline(transaction=False)
        pipe.xack(self.stream, self.group, *ids)
        pipe.xdel(self.stream, *ids)
        await call_redis(pipe.execute(), self._timeout)

    async def _dead_letter(self, ids: Sequence[Any]) -> None:
        client = self._backend.client
        claimed: Any = await call_redis(
            client.xclaim(self.stream, self.group, self.consumer, 0, list(ids)), self._timeout
        )
        pipe = client.pipeline(transaction=False)
        for raw_id, fields in claimed:
            if fields is not None:  # None: deleted from the stream meanwhile
                pipe.xadd(self.dead_letters, {**fields, "id": raw_id})
        pipe.xack(self.stream, self.group, *ids)
        pipe.xdel(self.stream, *ids)
        await call_redis(pipe.execute(), self._timeout)
        self.stats.dead_lettered += len(ids)


def _stream_entries(reply: Any) -> list[tuple[Any, dict[Any, Any]]]:
    """XREADGROUP's entries for our one stream (RESP2 list or RESP3 map)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        entries = next(iter(reply.values()))
        return list(entries[0] if entries and isinstance(entries[0], list) else entries)
    return list(reply[0][1])


def _newest_per_key(writes: Sequence[PendingWrite[V]]) -> list[PendingWrite[V]]:
    newest: dict[str, PendingWrite[V]] = {}
    for write in writes:
        current = newest.get(write.key)
        if current is None or write.order > current.order:
            newest[write.key] = write
    return sorted(newest.values(), key=lambda w: w.order)
