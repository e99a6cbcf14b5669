"""JWT tokens: signing for the CLI and internal callers, verification for the
gateway and the services.

The accepted algorithm comes from configuration only; the token's own `alg`
header never chooses it (that is how `alg: none` and key-confusion attacks work).

Every signed token carries a random `jti` and its `iat`, so it can be revoked on
its own (by id) or with all of its subject's tokens issued before a time. Whoever
keeps revocations (the gateway, see `gateway/revocations.py`) passes a
`RevocationCheck` to the codec; it is asked on every use of a token, including
uses answered from the verified-token memory.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import time
from collections.abc import Callable
from typing import Literal, Protocol

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


@dataclasses.dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token whose signature, issuer and expiry checked out, with what revoking needs."""

    principal: Principal
    token_id: str | None  # the `jti`; None for tokens minted without one
    issued_at: float | None  # the `iat`; None when absent
    expires_at: float


class RevocationCheck(Protocol):
    def is_revoked(self, token: VerifiedToken) -> bool:
        """Whether `token` was revoked. Called on every use of a token: keep it a lookup."""


class TokenCodec:
    """Signs and verifies tokens with one key and one fixed algorithm.

    Verifying a token costs tens of microseconds (HMAC plus JSON), paid on every
    authenticated request by the gateway and again by the service. Tokens that
    verified are therefore remembered, keyed by their exact bytes, until their
    own expiry: a remembered token is re-checked against `exp` on every use, and
    a token that failed is never remembered. The cache is bounded.

    `revocations`, when given, is consulted on every use, remembered or not, so a
    revoked token is refused from the next request on. `max_ttl_s`, when given,
    refuses tokens meant to live longer (or that do not say when they were
    issued): it bounds how long a revocation of a subject has to be kept.
    """

    __slots__ = (
        "_algorithm",
        "_cache_size",
        "_issuer",
        "_key",
        "_max_ttl_s",
        "_now",
        "_revocations",
        "_verified",
    )

    def __init__(
        self,
        key: str,
        algorithm: str = "HS256",
        issuer: str = "bookvault",
        *,
        cache_size: int = 4096,
        now: Callable[[], float] = time.time,
        revocations: RevocationCheck | None = None,
        max_ttl_s: float | None = None,
    ) -> None:
        if len(key) < 32:
            raise ValueError("the JWT key must be at least 32 characters")
        if max_ttl_s is not None and not max_ttl_s > 0:
            raise ValueError("the longest token lifetime must be positive")
        self._key = key
        self._algorithm = algorithm
        self._issuer = issuer
        self._cache_size = cache_size
        self._now = now
        self._revocations = revocations
        self._max_ttl_s = max_ttl_s
        self._verified: dict[str, VerifiedToken] = {}

    def sign(self, subject: str, role: Role, ttl_s: int = 3600, now: float | None = None) -> str:
        # Millisecond times (JWT allows fractions): a token issued just after its
        # subject's tokens were revoked must not look as if issued before. Rounded
        # down, never up: a token issued before a revocation must never look as if
        # issued after it (only one issued in the same millisecond is refused too).
        issued = math.floor((time.time() if now is None else now) * 1000) / 1000
        claims = {
            "sub": subject,
            "role": role,
            "iss": self._issuer,
            "iat": issued,
            "exp": issued + ttl_s,
            "jti": secrets.token_urlsafe(12),
        }
        return jwt.encode(claims, self._key, algorithm=self._algorithm)

    def verify(self, token: str) -> Principal:
        return self.verify_token(token).principal

    def verify_token(self, token: str) -> VerifiedToken:
        """The verified token with its id and times; AuthError when it is not acceptable."""
        verified = self._verified.get(token)
        if verified is not None:
            if self._now() >= verified.expires_at:
                del self._verified[token]
                raise AuthError("the token has expired")
        else:
            verified = self._decode(token)
            if self._cache_size > 0:
                if len(self._verified) >= self._cache_size:
                    # Forget the oldest entry (dicts keep insertion order).
                    del self._verified[next(iter(self._verified))]
                self._verified[token] = verified
        if self._revocations is not None and self._revocations.is_revoked(verified):
            raise AuthError("the token has been revoked")
        return verified

    def _decode(self, token: str) -> VerifiedToken:
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
        token_id = claims.get("jti")
        issued = claims.get("iat")
        expires = float(claims["exp"])
        if self._max_ttl_s is not None and (
            not isinstance(issued, int | float) or expires - float(issued) > self._max_ttl_s
        ):
            raise AuthError(f"invalid token: it must carry 'iat' and live at most {self._max_ttl_s:g}s")
        return VerifiedToken(
            Principal(subject=subject, role=role),
            token_id if isinstance(token_id, str) and token_id else None,
            float(issued) if isinstance(issued, int | float) else None,
            expires,
        )

    def verify_header(self, authorization: str | None) -> Principal | None:
        """Verify an `Authorization` header value; None when there is none."""
        if authorization is None:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("expected 'Authorization: Bearer <token>'")
        return self.verify(token.strip())
