"""Read/write routing over a PostgreSQL primary and streaming replicas, with
read-your-writes by replication position, and connection-leak detection.

    router = ReadRouter(primary_pool, {"replica-1": replica_pool}, positions=RedisWritePositions(redis))
    async with router.write(principal="42") as conn:      # primary; remembers the commit LSN
        await conn.execute("UPDATE ...")
    row = await router.fetchrow("SELECT ...", principal="42")  # a replica that has replayed it, else primary

How a read is routed (GitLab's database load balancer works the same way):
  1. the caller's last write position (WAL LSN, kept per principal after each
     write, with a TTL) is looked up; anonymous reads have none;
  2. a replica in rotation whose replayed LSN (polled) is at or past it serves
     the read; with none, the primary does;
  3. replicas lagging beyond `max_lag_bytes` or `max_lag_seconds`, or not
     answering, leave the rotation until they catch up;
  4. the `fetch*` helpers retry a read on the primary when a replica connection
     fails, so a replica going down never surfaces as an error (nor does a query
     the replica cancels for a conflict with recovery).

Writes are noted with `write(principal)` or, for several keys at once (the
writer, and objects whose shared caches must not be refilled from a replica
that is behind), `note_write(conn, keys)`; `reader(key)` gives pool-shaped
reads bound to one key.

Exceptions: none of its own; asyncpg's errors pass through from the primary.
"""

from bookvault.patterns.db.leaks import LeakGuard, LeakReport
from bookvault.patterns.db.lsn import format_lsn, parse_lsn
from bookvault.patterns.db.positions import MemoryWritePositions, RedisWritePositions, WritePositions
from bookvault.patterns.db.router import BoundReader, ReadRouter, ReplicaPolicy, ReplicaState, RouterSnapshot

__all__ = [
    "BoundReader",
    "LeakGuard",
    "LeakReport",
    "MemoryWritePositions",
    "ReadRouter",
    "RedisWritePositions",
    "ReplicaPolicy",
    "ReplicaState",
    "RouterSnapshot",
    "WritePositions",
    "format_lsn",
    "parse_lsn",
]
