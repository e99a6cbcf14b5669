"""The catalog's internal reservation API, seen from borrowing.

aiohttp errors and HTTP statuses are translated here, once, into this tree:

    CatalogError
    ├── NoCopyAvailable        409 on reserve: no copy left, or this reservation id
    │                          was already released (the catalog fences late reserves)
    ├── BookNotFound           404 on reserve
    ├── CatalogUnavailable     refused/reset connection, timeout, 5xx: the outcome is unknown
    └── CatalogProtocolError   a status or body we do not expect (bad token, schema drift)

Callers treat `CatalogUnavailable` and `CatalogProtocolError` alike: the
reservation may or may not exist, so it has to be released before the loan is
given up.

Resilience: every call runs through a `Policy` (breaker, retry with budget,
bulkhead, per-attempt timeout; each present only when its switch is on) and never
outlives the current request's deadline. Reserve and release may be retried: both
are idempotent per reservation id. A call the policy refuses (breaker open,
bulkhead full, deadline spent) is a `CatalogUnavailable` too. When no attempt of a
reserve ever left this process, the client remembers it, and the release that
follows is answered here: there is nothing at the catalog to undo, so the borrow is
cancelled cleanly at once instead of waiting for the reconciler.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import quote

import aiohttp
import msgspec

from bookvault.auth import TokenCodec
from bookvault.config import Settings
from bookvault.patterns.clock import Clock, SystemClock
from bookvault.patterns.resilience import (
    Deadline,
    Policy,
    ResilienceError,
    current_deadline,
    parse_retry_after,
)
from bookvault.web.resilience import Guards

__all__ = [
    "BookNotFound",
    "CatalogClient",
    "CatalogError",
    "CatalogProtocolError",
    "CatalogUnavailable",
    "NoCopyAvailable",
    "Reservation",
    "ServiceToken",
    "catalog_policy",
]

_encoder = msgspec.json.Encoder()
T = TypeVar("T")
# Reservation ids whose reserve never left this process, kept until their release.
_UNSENT_LIMIT = 10_000
# Within a request's deadline: time kept to write the answer, and the most a reserve
# leaves (a quarter of what remains, up to this) for a release after it.
_ANSWER_MARGIN_S = 0.02
_RELEASE_SHARE_MAX_S = 0.5


class CatalogError(Exception):
    """The catalog did not reserve or release as asked."""


class NoCopyAvailable(CatalogError):
    pass


class BookNotFound(CatalogError):
    pass


class CatalogUnavailable(CatalogError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        # Seconds the catalog asked us to wait (its Retry-After), read by the retry policy.
        self.retry_after = retry_after


class CatalogProtocolError(CatalogError):
    pass


class Reservation(msgspec.Struct, frozen=True):
    reservation_id: str
    book_id: int | None  # null only on the catalog's tombstone for a never-reserved id
    state: str


class _ReserveBody(msgspec.Struct, frozen=True):
    reservation_id: str


class ServiceToken:
    """A service-role JWT minted locally and reused until shortly before it
    expires, so a reservation does not pay for an HMAC signature every time."""

    __slots__ = ("_clock", "_codec", "_expires_at", "_header", "_refresh_before_s", "_subject", "_ttl_s")

    def __init__(
        self,
        codec: TokenCodec,
        subject: str = "borrowing",
        *,
        ttl_s: int = 300,
        refresh_before_s: int = 60,
        clock: Clock | None = None,
    ) -> None:
        if not 0 <= refresh_before_s < ttl_s:
            raise ValueError("refresh_before_s must be shorter than the token lifetime")
        self._codec = codec
        self._subject = subject
        self._ttl_s = ttl_s
        self._refresh_before_s = refresh_before_s
        self._clock = clock or SystemClock()
        self._header = ""
        self._expires_at = 0.0

    def authorization(self) -> str:
        now = self._clock.time()
        if now >= self._expires_at - self._refresh_before_s:
            token = self._codec.sign(self._subject, "service", ttl_s=self._ttl_s, now=now)
            self._header = f"Bearer {token}"
            self._expires_at = now + self._ttl_s
        return self._header


def catalog_policy(guards: Guards, settings: Settings) -> Policy:
    """Borrowing's policy for the catalog: failures are unanswered calls (transport
    errors, timeouts, 5xx); a 404 or 409 is an answer and counts as a success."""
    return guards.policy(
        "catalog",
        failure=(CatalogUnavailable, TimeoutError),
        retry_on=(CatalogUnavailable, TimeoutError),
        # Seed 002 waits 1 s; within a 2 s call timeout that leaves no room for a
        # second attempt, so the first wait is shorter (the multiplier still applies).
        retry_initial_wait_s=0.1,
        bulkhead_calls=settings.catalog_bulkhead_calls,
        attempt_timeout_s=settings.catalog_timeout_s,
    )


class CatalogClient:
    """Reserve and release copies with one shared, pooled aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        token: ServiceToken,
        timeout_s: float,
        policy: Policy | None = None,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        # Without a policy only the caller's deadline bounds the calls.
        self.policy = policy if policy is not None else Policy()
        self._unsent: OrderedDict[str, None] = OrderedDict()
        # None until the first call; read by the readiness report and metrics.
        self.reachable: bool | None = None

    async def reserve(self, book_id: int, reservation_id: str) -> Reservation:
        """Take one copy of `book_id` under `reservation_id` (idempotent per id)."""
        path = f"/internal/books/{book_id}/reservations"
        payload = _encoder.encode(_ReserveBody(reservation_id))
        sent = False

        def attempt() -> Awaitable[tuple[int, bytes]]:
            nonlocal sent
            sent = True
            return self._post(path, payload)

        try:
            status, body = await self._guarded(attempt, leave_for_release=True)
        except CatalogUnavailable:
            if not sent:
                self._unsent[reservation_id] = None
                if len(self._unsent) > _UNSENT_LIMIT:
                    self._unsent.popitem(last=False)
            raise
        if status in (200, 201):
            try:
                return msgspec.json.decode(body, type=Reservation)
            except msgspec.MsgspecError as exc:
                raise CatalogProtocolError(f"reserve answered {status} with an unreadable body") from exc
        if status == 409:
            raise NoCopyAvailable(f"no copy of book {book_id} can be reserved")
        if status == 404:
            raise BookNotFound(f"book {book_id} does not exist")
        raise CatalogProtocolError(f"reserve answered {status}: {body[:200]!r}")

    async def release(self, reservation_id: str) -> None:
        """Give the copy back, or fence the id if it was never reserved (idempotent)."""
        if reservation_id in self._unsent:
            del self._unsent[reservation_id]
            return  # no reserve under this id ever left this process
        path = f"/internal/reservations/{quote(reservation_id, safe='')}/release"
        status, body = await self._guarded(lambda: self._post(path, b""))
        if not 200 <= status < 300:
            raise CatalogProtocolError(f"release answered {status}: {body[:200]!r}")

    async def ping(self) -> None:
        """Raise `CatalogUnavailable` unless the catalog answers its health check."""
        try:
            async with self._session.get(f"{self._base_url}/healthz", timeout=self._timeout) as resp:
                await resp.read()
                healthy = resp.status == 200
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.reachable = False
            raise CatalogUnavailable(f"catalog unreachable: {_describe(exc)}") from exc
        self.reachable = healthy
        if not healthy:
            raise CatalogUnavailable(f"catalog health check answered {resp.status}")

    async def _guarded(self, attempt: Callable[[], Awaitable[T]], *, leave_for_release: bool = False) -> T:
        deadline = current_deadline()
        if deadline is not None:
            # Answer before the caller's deadline, never at it: a reserve leaves a share
            # of the time for the release that undoes it if it fails.
            spare = min(deadline.remaining() * 0.25, _RELEASE_SHARE_MAX_S) if leave_for_release else 0.0
            deadline = Deadline(deadline.at - spare - _ANSWER_MARGIN_S, deadline.clock)
        try:
            return await self.policy.run(attempt, idempotent=True, deadline=deadline)
        except ResilienceError as exc:
            # Refused here (breaker open, bulkhead full) or out of time: to the saga
            # this is an unreachable catalog, and a clean 503 for the caller.
            raise CatalogUnavailable(f"catalog call not made or not finished: {exc}") from exc

    async def _post(self, path: str, payload: bytes) -> tuple[int, bytes]:
        headers = {"Authorization": self._token.authorization()}
        if payload:
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.post(
                self._base_url + path, data=payload, headers=headers, timeout=self._timeout
            ) as resp:
                body = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.reachable = False
            raise CatalogUnavailable(f"catalog unreachable: {_describe(exc)}") from exc
        self.reachable = status < 500
        if status >= 500:
            hint = parse_retry_after(retry_after) if retry_after is not None else None
            raise CatalogUnavailable(f"catalog answered {status}", retry_after=hint)
        return status, body


def _describe(exc: BaseException) -> str:
    # A timeout's str() is empty; the type name is the useful part.
    return str(exc) or type(exc).__name__
