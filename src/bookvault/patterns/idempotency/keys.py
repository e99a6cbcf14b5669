"""Keys, scopes and request fingerprints: pure functions, no I/O."""

from __future__ import annotations

import dataclasses
import hashlib
import re

from bookvault.patterns.idempotency.errors import MalformedKey, MissingKey

__all__ = ["KEY_MAX_LENGTH", "KEY_MIN_LENGTH", "Scope", "fingerprint", "lock_id", "parse_key"]

KEY_MIN_LENGTH = 8
KEY_MAX_LENGTH = 255
# Visible ASCII only: keys travel in a header and are compared byte for byte.
_KEY_PATTERN = re.compile(r"[\x21-\x7e]+")


def parse_key(raw: str | None) -> str:
    """The `Idempotency-Key` header value, or MissingKey / MalformedKey."""
    if raw is None or raw == "":
        raise MissingKey
    if not KEY_MIN_LENGTH <= len(raw) <= KEY_MAX_LENGTH or _KEY_PATTERN.fullmatch(raw) is None:
        raise MalformedKey(KEY_MIN_LENGTH, KEY_MAX_LENGTH)
    return raw


@dataclasses.dataclass(frozen=True, slots=True)
class Scope:
    """Where a key lives: the same key from another principal, method or path is
    another request entirely."""

    principal: str
    method: str
    path: str
    key: str


def fingerprint(scope: Scope, canonical_body: bytes) -> str:
    """What makes two requests with one key "the same": endpoint and body.

    Pass the body re-encoded from its decoded form, so key order and whitespace
    do not matter.
    """
    parts = (scope.method.encode(), scope.path.encode(), canonical_body)
    return hashlib.sha256(b"\n".join(parts)).hexdigest()


def lock_id(scope: Scope) -> int:
    """A signed 64-bit advisory lock id for one scope (a collision only costs a 409)."""
    text = "\n".join(("idempotency", scope.principal, scope.method, scope.path, scope.key))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)
