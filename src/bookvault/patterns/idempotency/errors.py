"""What can go wrong with an idempotency key; each message is safe to show a client.

IdempotencyError
 ├── MissingKey    no key sent (400)
 ├── MalformedKey  a key we cannot use (400)
 ├── KeyInFlight   the first request with the key is still running (409, Retry-After)
 └── KeyReused     the key was used for a different request (422)
"""

from __future__ import annotations

__all__ = ["IdempotencyError", "KeyInFlight", "KeyReused", "MalformedKey", "MissingKey"]


class IdempotencyError(Exception):
    """Base of every idempotency error; `status` is the HTTP status to answer with."""

    status = 400


class MissingKey(IdempotencyError):
    status = 400

    def __init__(self) -> None:
        super().__init__(
            "the Idempotency-Key header is required: send a unique value (e.g. a UUID) per request, "
            "and the same value again when retrying it"
        )


class MalformedKey(IdempotencyError):
    status = 400

    def __init__(self, min_length: int, max_length: int) -> None:
        super().__init__(
            f"the Idempotency-Key header must be {min_length} to {max_length} visible ASCII characters, "
            "no spaces"
        )


class KeyInFlight(IdempotencyError):
    status = 409

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("a request with this Idempotency-Key is still being processed; retry it in a moment")
        self.retry_after_s = retry_after_s


class KeyReused(IdempotencyError):
    status = 422

    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was already used for a different request (another body or endpoint); "
            "send a new key for a new request"
        )
