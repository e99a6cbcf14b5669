"""PostgreSQL storage for idempotency keys, on an asyncpg connection.

Create the table with `SCHEMA` (or an equivalent migration). The lock is
`pg_try_advisory_xact_lock`, so it is released when the transaction ends,
whichever way it ends; `SET LOCAL idle_in_transaction_session_timeout` bounds
how long a stalled request can hold it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from bookvault.patterns.idempotency.keys import Scope, lock_id
from bookvault.patterns.idempotency.store import StoredKey, StoredResponse

__all__ = ["SCHEMA", "PostgresIdempotencyStore", "sweep_expired"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency_keys (
    principal text NOT NULL,
    method text NOT NULL,
    path text NOT NULL,
    idempotency_key text NOT NULL,
    fingerprint text NOT NULL,
    status smallint NOT NULL,
    headers jsonb NOT NULL,
    body bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (principal, method, path, idempotency_key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_expiry ON idempotency_keys (expires_at);
"""

_FIND = """
SELECT fingerprint, status, headers::text AS headers, body, expires_at - now() AS expires_in
  FROM idempotency_keys
 WHERE principal = $1 AND method = $2 AND path = $3 AND idempotency_key = $4 AND expires_at > now()
"""

_SAVE = """
INSERT INTO idempotency_keys (principal, method, path, idempotency_key, fingerprint, status, headers,
                              body, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, now() + $9::interval)
ON CONFLICT (principal, method, path, idempotency_key) DO UPDATE
   SET fingerprint = excluded.fingerprint, status = excluded.status, headers = excluded.headers,
       body = excluded.body, created_at = now(), expires_at = excluded.expires_at
 WHERE idempotency_keys.expires_at <= now()
"""

# Bounded: one batch per call, skipping rows another sweeper holds.
_SWEEP = """
DELETE FROM idempotency_keys
 WHERE ctid IN (SELECT ctid FROM idempotency_keys
                 WHERE expires_at <= now()
                 LIMIT $1
                   FOR UPDATE SKIP LOCKED)
"""


def _headers_json(headers: tuple[tuple[str, str], ...]) -> str:
    return json.dumps([list(pair) for pair in headers])


def _headers_from(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(name), str(value)) for name, value in json.loads(text))


class PostgresIdempotencyStore:
    """Keys in table `idempotency_keys`, on `conn` (an asyncpg connection already
    inside the business transaction)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def try_lock(self, scope: Scope, lock_timeout: timedelta) -> bool:
        millis = max(1, int(lock_timeout.total_seconds() * 1000))
        # SET LOCAL takes no parameters; set_config(..., true) is its parameterised form.
        # One round trip: the timeout is set before the lock is tried.
        locked = await self._conn.fetchval(
            "SELECT locked FROM (SELECT set_config('idle_in_transaction_session_timeout', $1, true)) AS s, "
            "LATERAL (SELECT pg_try_advisory_xact_lock($2) AS locked) AS l",
            str(millis),
            lock_id(scope),
        )
        return bool(locked)

    async def find(self, scope: Scope) -> StoredKey | None:
        row = await self._conn.fetchrow(_FIND, scope.principal, scope.method, scope.path, scope.key)
        if row is None:
            return None
        response = StoredResponse(row["status"], _headers_from(row["headers"]), bytes(row["body"]))
        return StoredKey(row["fingerprint"], response, row["expires_in"])

    async def save(self, scope: Scope, fingerprint: str, response: StoredResponse, ttl: timedelta) -> None:
        await self._conn.execute(
            _SAVE,
            scope.principal,
            scope.method,
            scope.path,
            scope.key,
            fingerprint,
            response.status,
            _headers_json(response.headers),
            response.body,
            ttl,
        )


async def sweep_expired(conn: Any, batch_size: int = 1000) -> int:
    """Delete at most `batch_size` expired keys; return how many went."""
    result: str = await conn.execute(_SWEEP, batch_size)
    return int(result.rsplit(" ", 1)[-1])
