"""JWT tokens: signing for the CLI and internal callers, verification for the
gateway and the services.

The accepted algorithm comes from configuration only; the token's own `alg`
header never chooses it (that is how `alg: none` and key-confusion attacks work).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Literal

import jwt

Role = Literal["member", "admin", "service"]
ROLES: frozenset[str] = frozenset({"member", "admin", "service"})
# Only tokens the CLI or a service mints may carry the internal role; it is
# refused from the outside by the gateway.
PUBLIC_ROLES: frozenset[str] = frozenset({"member", "admin"})


class AuthError(Exception):
    """The credentials are missing or invalid (HTTP 401)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    role: Role

    @property
    def is_privileged(self) -> bool:
        return self.role in ("admin", "service")

    def may_act_for(self, member_id: int) -> bool:
        """A member acts only for themselves; admins and services for anyone."""
        if self.is_privileged:
            return True
        # Compare as numbers, as the gateway does: subject "007" is member 7.
        return self.subject.isascii() and self.subject.isdigit() and int(self.subject) == member_id


class TokenCodec:
    """Signs and verifies tokens with one key and one fixed algorithm.

    Verifying a token costs tens of microseconds (HMAC plus JSON), paid on every
    authenticated request by the gateway and again by the service. Tokens that
    verified are therefore remembered, keyed by their exact bytes, until their
    own expiry: a remembered token is re-checked against `exp` on every use, and
    a token that failed is never remembered. The cache is bounded.
    """

    __slots__ = ("_algorithm", "_cache_size", "_issuer", "_key", "_now", "_verified")

    def __init__(
        self,
        key: str,
        algorithm: str = "HS256",
        issuer: str = "bookvault",
        *,
        cache_size: int = 4096,
        now: Callable[[], float] = time.time,
    ) -> None:
        if len(key) < 32:
            raise ValueError("the JWT key must be at least 32 characters")
        self._key = key
        self._algorithm = algorithm
        self._issuer = issuer
        self._cache_size = cache_size
        self._now = now
        self._verified: dict[str, tuple[Principal, float]] = {}

    def sign(self, subject: str, role: Role, ttl_s: int = 3600, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        claims = {"sub": subject, "role": role, "iss": self._issuer, "iat": issued, "exp": issued + ttl_s}
        return jwt.encode(claims, self._key, algorithm=self._algorithm)

    def verify(self, token: str) -> Principal:
        remembered = self._verified.get(token)
        if remembered is not None:
            principal, expires = remembered
            if self._now() < expires:
                return principal
            del self._verified[token]
            raise AuthError("the token has expired")
        principal, expires = self._decode(token)
        if self._cache_size > 0:
            if len(self._verified) >= self._cache_size:
                # Forget the oldest entry (dicts keep insertion order).
                del self._verified[next(iter(self._verified))]
            self._verified[token] = (principal, expires)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                issuer=self._issuer,
                options={"require": ["exp", "sub", "role", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        role = claims.get("role")
        subject = claims.get("sub")
        if role not in ROLES or not isinstance(subject, str) or not subject:
            raise AuthError("invalid token: unknown role or empty subject")
        return Principal(subject=subject, role=role), float(claims["exp"])

    def verify_header(self, authorization: str | None) -> Principal | None:
        """Verify an `Authorization` header value; None when there is none."""
        if authorization is None:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("expected 'Authorization: Bearer <token>'")
        return self.verify(token.strip())
