"""The storage interface: what the guard needs from wherever keys are kept."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Protocol

from bookvault.patterns.idempotency.keys import Scope

__all__ = ["IdempotencyStore", "StoredKey", "StoredResponse"]


@dataclasses.dataclass(frozen=True, slots=True)
class StoredResponse:
    """A completed outcome, kept to be replayed byte for byte."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class StoredKey:
    fingerprint: str
    response: StoredResponse
    # How long the key has left before it expires, when the store knows.
    expires_in: timedelta | None = None


class IdempotencyStore(Protocol):
    """Key storage working inside the caller's transaction (lock and save must
    commit or roll back with the business write)."""

    async def try_lock(self, scope: Scope, lock_timeout: timedelta) -> bool:
        """Take the scope's in-flight lock until the transaction ends; False if held."""
        ...

    async def find(self, scope: Scope) -> StoredKey | None:
        """The unexpired completed outcome under `scope`, if any."""
        ...

    async def save(self, scope: Scope, fingerprint: str, response: StoredResponse, ttl: timedelta) -> None:
        """Store the outcome (replacing an expired one under the same scope)."""
        ...
