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
"""

from __future__ import annotations

from urllib.parse import quote

import aiohttp
import msgspec

from bookvault.auth import TokenCodec
from bookvault.patterns.clock import Clock, SystemClock

__all__ = [
    "BookNotFound",
    "CatalogClient",
    "CatalogError",
    "CatalogProtocolError",
    "CatalogUnavailable",
    "NoCopyAvailable",
    "Reservation",
    "ServiceToken",
]

_encoder = msgspec.json.Encoder()


class CatalogError(Exception):
    """The catalog did not reserve or release as asked."""


class NoCopyAvailable(CatalogError):
    pass


class BookNotFound(CatalogError):
    pass


class CatalogUnavailable(CatalogError):
    pass


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


class CatalogClient:
    """Reserve and release copies with one shared, pooled aiohttp session."""

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, token: ServiceToken, timeout_s: float
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        # None until the first call; read by the readiness report and metrics.
        self.reachable: bool | None = None

    async def reserve(self, book_id: int, reservation_id: str) -> Reservation:
        """Take one copy of `book_id` under `reservation_id` (idempotent per id)."""
        path = f"/internal/books/{book_id}/reservations"
        status, body = await self._post(path, _encoder.encode(_ReserveBody(reservation_id)))
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
        status, body = await self._post(
            f"/internal/reservations/{quote(reservation_id, safe='')}/release", b""
        )
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
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.reachable = False
            raise CatalogUnavailable(f"catalog unreachable: {_describe(exc)}") from exc
        self.reachable = status < 500
        if status >= 500:
            raise CatalogUnavailable(f"catalog answered {status}")
        return status, body


def _describe(exc: BaseException) -> str:
    # A timeout's str() is empty; the type name is the useful part.
    return str(exc) or type(exc).__name__
