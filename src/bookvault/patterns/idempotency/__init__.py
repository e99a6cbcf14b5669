"""Idempotency keys for unsafe requests (the Stripe design, IETF draft status codes).

A client sends `Idempotency-Key` with a POST; the key is claimed in the *same*
database transaction as the business write, so either both commit or neither
does. The scope is (principal, method, path, key): another caller's identical
key is an independent request. Outcomes:

* first use: the handler runs and its response (status, headers, body, 4xx
  included) is stored with a fingerprint of the request;
* same key, same fingerprint, completed: the stored response, byte for byte
  (`Replayed`; callers add `Idempotent-Replayed: true`);
* same key while the first request is still running: `KeyInFlight` (409 with
  `Retry-After`);
* same key, different fingerprint: `KeyReused` (422);
* missing or malformed key: `MissingKey` / `MalformedKey` (400).

Keys expire after a TTL (24 h by default) and are swept in bounded batches. The
in-flight lock is a transaction-scoped advisory lock, so a crashed request's
lock ends with its connection, and a hung one's after `lock_timeout` (the
session's idle-in-transaction timeout aborts it).

Storage is behind the `IdempotencyStore` protocol; `PostgresIdempotencyStore`
works on an asyncpg connection inside the caller's transaction.
`RedisReplayCache` is an optional fast path for replays: a completed outcome
found there is replayed without a database transaction (the database stays
the source of truth; the cache only ever holds committed outcomes).
"""

from __future__ import annotations

from bookvault.patterns.idempotency.errors import (
    IdempotencyError,
    KeyInFlight,
    KeyReused,
    MalformedKey,
    MissingKey,
)
from bookvault.patterns.idempotency.guard import Idempotency, Outcome
from bookvault.patterns.idempotency.keys import Scope, fingerprint, lock_id, parse_key
from bookvault.patterns.idempotency.postgres import SCHEMA, PostgresIdempotencyStore, sweep_expired
from bookvault.patterns.idempotency.redis import RedisReplayCache
from bookvault.patterns.idempotency.store import IdempotencyStore, StoredKey, StoredResponse

__all__ = [
    "SCHEMA",
    "Idempotency",
    "IdempotencyError",
    "IdempotencyStore",
    "KeyInFlight",
    "KeyReused",
    "MalformedKey",
    "MissingKey",
    "Outcome",
    "PostgresIdempotencyStore",
    "RedisReplayCache",
    "Scope",
    "StoredKey",
    "StoredResponse",
    "fingerprint",
    "lock_id",
    "parse_key",
    "sweep_expired",
]
