"""What can go wrong in accounts, independent of HTTP (app.py maps each to a status).

AccountsError
 ├── InvalidRequest          a header, cursor or parameter we cannot use (400)
 ├── MemberNotFound          no such member (404)
 ├── EmailTaken              another member has this email (409)
 ├── IdempotencyKeyInFlight  the first request with this key is still running (409)
 └── IdempotencyKeyReused    the key was used for a different request (422)
"""

from __future__ import annotations

__all__ = [
    "AccountsError",
    "EmailTaken",
    "IdempotencyKeyInFlight",
    "IdempotencyKeyReused",
    "InvalidRequest",
    "MemberNotFound",
]


class AccountsError(Exception):
    """Base of every accounts error; the message is safe to show to the caller."""


class InvalidRequest(AccountsError):
    pass


class MemberNotFound(AccountsError):
    def __init__(self, member_id: int) -> None:
        super().__init__(f"member {member_id} does not exist")
        self.member_id = member_id


class EmailTaken(AccountsError):
    def __init__(self) -> None:
        super().__init__("a member with this email already exists")


class IdempotencyKeyInFlight(AccountsError):
    def __init__(self) -> None:
        super().__init__("a request with this Idempotency-Key is still being processed; retry it in a moment")


class IdempotencyKeyReused(AccountsError):
    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was already used for a different request (another body, endpoint "
            "or caller); send a new key for a new request"
        )
