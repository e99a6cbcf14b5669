"""Loan returned → late fee charged to the member's account, once."""

from __future__ import annotations

import json
from collections.abc import Callable

import aiohttp

from bookvault.logs import get_logger
from bookvault.patterns.outbox import Delivery

__all__ = ["LateFeeCharger", "RetryLater", "charge_key"]

log = get_logger(__name__)


class RetryLater(Exception):
    """The charge could not be made now; the message stays unacked and comes back."""


def charge_key(event_id: str) -> str:
    """The Idempotency-Key of the charge for one event: stable across redeliveries."""
    return f"late-fee-{event_id}"


class LateFeeCharger:
    """Handles `loan.returned` deliveries: a fee above zero becomes a charge.

    Accounts answers a repeat of the key with the stored charge, so at-least-once
    delivery makes exactly one charge. 409 (the same charge still in flight),
    5xx and network errors are retried; a completed 4xx (e.g. the member no
    longer exists) is final and logged.
    """

    __slots__ = ("_accounts_url", "_session", "_token")

    def __init__(self, session: aiohttp.ClientSession, accounts_url: str, token: Callable[[], str]) -> None:
        self._session = session
        self._accounts_url = accounts_url.rstrip("/")
        self._token = token

    async def __call__(self, delivery: Delivery) -> None:
        event = delivery.event
        if event.event_type != "loan.returned":
            return
        loan = json.loads(event.payload)
        fee = int(loan["fee_cents"])
        if fee <= 0:
            return
        url = f"{self._accounts_url}/api/accounts/v1/members/{int(loan['member_id'])}/charges"
        headers = {"Authorization": f"Bearer {self._token()}", "Idempotency-Key": charge_key(event.event_id)}
        try:
            async with self._session.post(
                url, json={"amount_cents": fee, "currency": "USD"}, headers=headers
            ) as resp:
                status = resp.status
                await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryLater(f"accounts unreachable: {exc}") from exc
        if status == 201:
            return
        if status == 409 or status >= 500:
            raise RetryLater(f"accounts answered {status}")
        log.warning("late fee not charged", loan_id=loan["loan_id"], status=status, event_id=event.event_id)
