"""What can go wrong in accounts, independent of HTTP (app.py maps each to a status).

AccountsError
 ├── InvalidRequest          a header, cursor or parameter we cannot use (400)
 ├── MemberNotFound          no such member (404)
 └── EmailTaken              another member has this email (409)

Idempotency-Key outcomes (400, 409, 422) are bookvault.patterns.idempotency's errors.
"""

from __future__ import annotations

__all__ = [
    "AccountsError",
    "EmailTaken",
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
