"""The guard: claim, replay or run, in the caller's transaction."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import timedelta

from bookvault.patterns.idempotency.errors import KeyInFlight, KeyReused
from bookvault.patterns.idempotency.keys import Scope
from bookvault.patterns.idempotency.store import IdempotencyStore, StoredKey, StoredResponse

__all__ = ["Idempotency", "Outcome"]

DEFAULT_TTL = timedelta(hours=24)
DEFAULT_LOCK_TIMEOUT = timedelta(seconds=30)


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """The response to send, and whether it is a stored one being replayed."""

    response: StoredResponse
    replayed: bool


class Idempotency:
    """Runs a handler at most once per scope.

    `run` must be called inside an open transaction on the connection the store
    and the handler share: the claim, the handler's writes and the stored
    response commit together or not at all. An exception from the handler
    stores nothing (the transaction rolls back), so a retry runs again; a
    response the handler returns, 4xx or 5xx included, is stored and replayed.
    """

    __slots__ = ("_lock_timeout", "_retry_after_s", "_ttl")

    def __init__(
        self,
        *,
        ttl: timedelta = DEFAULT_TTL,
        lock_timeout: timedelta = DEFAULT_LOCK_TIMEOUT,
        retry_after_s: int = 1,
    ) -> None:
        if ttl <= timedelta(0) or lock_timeout <= timedelta(0) or retry_after_s < 0:
            raise ValueError("ttl and lock_timeout must be positive, retry_after_s not negative")
        self._ttl = ttl
        self._lock_timeout = lock_timeout
        self._retry_after_s = retry_after_s

    @property
    def ttl(self) -> timedelta:
        return self._ttl

    def replay(self, stored: StoredKey | None, fingerprint: str) -> Outcome | None:
        """The replay of a completed outcome (KeyReused if the request differs);
        None if nothing is stored. Usable for a lock-free lookup before `run`."""
        if stored is None:
            return None
        if stored.fingerprint != fingerprint:
            raise KeyReused
        return Outcome(stored.response, replayed=True)

    async def run(
        self,
        store: IdempotencyStore,
        scope: Scope,
        fingerprint: str,
        handler: Callable[[], Awaitable[StoredResponse]],
    ) -> Outcome:
        if not await store.try_lock(scope, self._lock_timeout):
            raise KeyInFlight(self._retry_after_s)
        replayed = self.replay(await store.find(scope), fingerprint)
        if replayed is not None:
            return replayed
        response = await handler()
        await store.save(scope, fingerprint, response, self._ttl)
        return Outcome(response, replayed=False)
