"""The read router: a primary pool for writes, replica pools for reads, chosen
by replication position (see the package docstring for the rules)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import asyncpg

from bookvault.patterns.clock import Clock, SystemClock
from bookvault.patterns.db.lsn import parse_lsn
from bookvault.patterns.db.positions import WritePositions

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # What a pool hands out: a proxy that behaves as a connection.
    PooledConnection = PoolConnectionProxy[asyncpg.Record]

__all__ = ["BoundReader", "ReadRouter", "ReplicaPolicy", "ReplicaState", "RouterSnapshot"]

log = logging.getLogger(__name__)

# Failures that mean "this server is unreachable", as opposed to a bad query.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
)

_REPLICA_PROBE = """SELECT pg_last_wal_replay_lsn()::text AS replay,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS since_replay"""


@dataclasses.dataclass(frozen=True, slots=True)
class ReplicaPolicy:
    """When a replica may serve reads. Defaults suit a local stack."""

    max_lag_bytes: int = 16 * 1024 * 1024
    max_lag_seconds: float = 5.0
    poll_interval_s: float = 0.25
    probe_timeout_s: float = 1.0

    def __post_init__(self) -> None:
        if self.max_lag_bytes < 0 or self.max_lag_seconds < 0:
            raise ValueError("lag limits cannot be negative")
        if self.poll_interval_s <= 0 or self.probe_timeout_s <= 0:
            raise ValueError("poll interval and probe timeout must be positive")


@dataclasses.dataclass(slots=True)
class ReplicaState:
    name: str
    pool: asyncpg.Pool
    replay_lsn: int = 0
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    in_rotation: bool = False  # until the first probe says otherwise
    reason: str = "not probed yet"
    reads: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class RouterSnapshot:
    primary_lsn: int
    reads_primary: int
    reads_replica: int
    fallbacks: int
    writes: int
    replicas: tuple[dict[str, Any], ...]


class ReadRouter:
    def __init__(
        self,
        primary: asyncpg.Pool,
        replicas: Mapping[str, asyncpg.Pool],
        *,
        positions: WritePositions | None = None,
        policy: ReplicaPolicy | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._primary = primary
        self._replicas = [ReplicaState(name, pool) for name, pool in replicas.items()]
        self._positions = positions
        self._policy = policy or ReplicaPolicy()
        self._clock = clock or SystemClock()
        self._turn = itertools.count()
        self._poller: asyncio.Task[None] | None = None
        self.primary_lsn = 0
        self.reads_primary = 0
        self.reads_replica = 0
        self.fallbacks = 0
        self.writes = 0

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        await self.refresh()
        self._poller = asyncio.get_running_loop().create_task(self._poll_forever())

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    async def _poll_forever(self) -> None:
        while True:
            await self._clock.sleep(self._policy.poll_interval_s)
            try:
                await self.refresh()
            except Exception:  # a probe bug must not kill routing; log and keep polling
                log.exception("replica probe failed")

    # --- health -------------------------------------------------------------------

    async def refresh(self) -> None:
        """Probe the primary's WAL position and every replica's replay state."""
        try:
            async with asyncio.timeout(self._policy.probe_timeout_s):
                self.primary_lsn = parse_lsn(
                    await self._primary.fetchval("SELECT pg_current_wal_lsn()::text")
                )
        except CONNECTION_ERRORS as exc:
            log.warning("primary unreachable while probing replicas: %s", exc)
            return
        for replica in self._replicas:
            await self._probe(replica)

    async def _probe(self, replica: ReplicaState) -> None:
        policy = self._policy
        try:
            async with asyncio.timeout(policy.probe_timeout_s):
                row = await replica.pool.fetchrow(_REPLICA_PROBE)
        except CONNECTION_ERRORS as exc:
            self._take_out(replica, f"unreachable: {exc or type(exc).__name__}")
            return
        if row is None or row["replay"] is None:
            self._take_out(replica, "not a replica (no replay position)")
            return
        replica.replay_lsn = parse_lsn(row["replay"])
        replica.lag_bytes = max(0, self.primary_lsn - replica.replay_lsn)
        # Caught up means no lag, however long ago the last transaction was replayed.
        replica.lag_seconds = 0.0 if replica.lag_bytes == 0 else float(row["since_replay"] or 0.0)
        if replica.lag_bytes > policy.max_lag_bytes:
            self._take_out(replica, f"behind by {replica.lag_bytes} bytes")
        elif replica.lag_seconds > policy.max_lag_seconds:
            self._take_out(replica, f"behind by {replica.lag_seconds:.1f} s")
        else:
            if not replica.in_rotation:
                log.info("replica %s back in rotation", replica.name)
            replica.in_rotation = True
            replica.reason = "in rotation"

    def _take_out(self, replica: ReplicaState, reason: str) -> None:
        if replica.in_rotation:
            log.warning("replica %s out of rotation: %s", replica.name, reason)
        replica.in_rotation = False
        replica.reason = reason

    # --- routing ------------------------------------------------------------------

    async def _choose(self, principal: str | None) -> ReplicaState | None:
        in_rotation = [r for r in self._replicas if r.in_rotation]
        if not in_rotation:  # no need to ask where the principal's writes got to
            return None
        needed = await self._positions.get(principal) if principal and self._positions else None
        candidates = [r for r in in_rotation if needed is None or r.replay_lsn >= needed]
        if not candidates:
            return None
        return candidates[next(self._turn) % len(candidates)]

    @contextlib.asynccontextmanager
    async def read(self, principal: str | None = None) -> AsyncIterator[PooledConnection]:
        """A connection for reads: a qualifying replica, else the primary. No
        automatic fallback once the block runs; prefer the `fetch*` helpers."""
        replica = await self._choose(principal)
        if replica is not None:
            try:
                connection = await replica.pool.acquire()
            except CONNECTION_ERRORS as exc:
                self._take_out(replica, f"unreachable: {exc or type(exc).__name__}")
                self.fallbacks += 1
            else:
                replica.reads += 1
                self.reads_replica += 1
                try:
                    yield connection
                finally:
                    await replica.pool.release(connection)
                return
        self.reads_primary += 1
        async with self._primary.acquire() as connection:
            yield connection

    async def _fetch(self, method: str, query: str, args: tuple[Any, ...], principal: str | None) -> Any:
        replica = await self._choose(principal)
        if replica is not None:
            try:
                result = await getattr(replica.pool, method)(query, *args)
            except CONNECTION_ERRORS as exc:
                self._take_out(replica, f"unreachable: {exc or type(exc).__name__}")
                self.fallbacks += 1
            except asyncpg.SerializationError:
                # "canceling statement due to conflict with recovery": replay needed
                # what the query was reading. The replica is fine; this read is not.
                self.fallbacks += 1
            else:
                replica.reads += 1
                self.reads_replica += 1
                return result
        self.reads_primary += 1
        return await getattr(self._primary, method)(query, *args)

    async def fetch(self, query: str, *args: Any, principal: str | None = None) -> list[asyncpg.Record]:
        result: list[asyncpg.Record] = await self._fetch("fetch", query, args, principal)
        return result

    async def fetchrow(self, query: str, *args: Any, principal: str | None = None) -> asyncpg.Record | None:
        result: asyncpg.Record | None = await self._fetch("fetchrow", query, args, principal)
        return result

    async def fetchval(self, query: str, *args: Any, principal: str | None = None) -> Any:
        return await self._fetch("fetchval", query, args, principal)

    @contextlib.asynccontextmanager
    async def write(self, principal: str | None = None) -> AsyncIterator[PooledConnection]:
        """A primary connection. When the block finishes without error, the
        principal's write position is remembered for read-your-writes; run
        your transaction inside the block so it has committed by then."""
        async with self._primary.acquire() as connection:
            yield connection
            await self.note_write(connection, (principal,) if principal else ())

    async def note_write(self, connection: Any, keys: Iterable[str]) -> None:
        """Remember the write just committed on `connection` (a primary
        connection, outside any transaction) under every key in `keys`.

        Keys are principals, or anything else a later read must see the write
        for: a cached object's id, say, so that a cache fill shared by every
        caller is never loaded from a replica that has not replayed it."""
        self.writes += 1
        wanted = [key for key in keys if key]
        if not wanted or self._positions is None:
            return
        # After COMMIT returns, the WAL is flushed past the commit record, so the
        # current position is at or after the write.
        lsn = parse_lsn(await connection.fetchval("SELECT pg_current_wal_lsn()::text"))
        positions = self._positions
        await asyncio.gather(*(positions.remember(key, lsn) for key in wanted))

    def reader(self, after: str | None = None) -> BoundReader:
        """`fetch`/`fetchrow`/`fetchval` that see every write remembered under
        `after` (None: any replica in rotation will do), shaped like a pool's
        so code written against a pool takes it unchanged."""
        return BoundReader(self, after)

    # --- reporting ----------------------------------------------------------------

    def snapshot(self) -> RouterSnapshot:
        return RouterSnapshot(
            primary_lsn=self.primary_lsn,
            reads_primary=self.reads_primary,
            reads_replica=self.reads_replica,
            fallbacks=self.fallbacks,
            writes=self.writes,
            replicas=tuple(
                {
                    "name": r.name,
                    "in_rotation": r.in_rotation,
                    "reason": r.reason,
                    "replay_lsn": r.replay_lsn,
                    "lag_bytes": r.lag_bytes,
                    "lag_seconds": r.lag_seconds,
                    "reads": r.reads,
                }
                for r in self._replicas
            ),
        )


class BoundReader:
    """A router's reads bound to one read-your-writes key (see `ReadRouter.reader`)."""

    __slots__ = ("_after", "_router")

    def __init__(self, router: ReadRouter, after: str | None) -> None:
        self._router = router
        self._after = after

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self._router.fetch(query, *args, principal=self._after)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        return await self._router.fetchrow(query, *args, principal=self._after)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._router.fetchval(query, *args, principal=self._after)
