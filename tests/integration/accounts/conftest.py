"""Helpers for talking to the running accounts service the way a client does.

Builds on the session fixtures of tests/conftest.py: `system` (every service
running) and `make_token`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import pytest

from bookvault.config import Settings

MakeToken = Callable[..., str]
_emails = itertools.count()
# Different per test run, so emails never collide with an earlier run's members.
_RUN = uuid.uuid4().hex[:10]


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclasses.dataclass
class Accounts:
    """A thin client: every call returns the raw reply so tests can assert on
    status, headers and exact bytes."""

    session: aiohttp.ClientSession
    base: str
    make_token: MakeToken

    @staticmethod
    def unique_email() -> str:
        return f"member-{_RUN}-{next(_emails)}@example.org"

    @staticmethod
    def new_key() -> str:
        return f"key-{uuid.uuid4()}"

    def admin(self) -> str:
        return self.make_token("1", "admin")

    def token(self, member_id: int) -> str:
        return self.make_token(str(member_id))

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        payload: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        async with self.session.request(
            method, f"{self.base}{path}", json=payload, data=data, headers=sent
        ) as resp:
            return Reply(resp.status, resp.headers.copy(), await resp.read())

    async def new_member(self, tier: str = "standard") -> int:
        reply = await self.call(
            "POST",
            "/members",
            token=self.admin(),
            payload={"name": "Test Member", "email": self.unique_email(), "tier": tier},
        )
        assert reply.status == 201, reply.body
        member_id: int = reply.json()["id"]
        return member_id

    async def pay(
        self, member_id: int, amount: int, key: str | None = None, token: str | None = None
    ) -> Reply:
        return await self.call(
            "POST",
            f"/members/{member_id}/payments",
            token=token or self.token(member_id),
            payload={"amount_cents": amount, "currency": "USD"},
            headers={"Idempotency-Key": key or self.new_key()},
        )

    async def charge(self, member_id: int, amount: int, key: str | None = None) -> Reply:
        return await self.call(
            "POST",
            f"/members/{member_id}/charges",
            token=self.admin(),
            payload={"amount_cents": amount, "currency": "USD"},
            headers={"Idempotency-Key": key or self.new_key()},
        )

    async def balance(self, member_id: int, query: str = "") -> Any:
        reply = await self.call("GET", f"/members/{member_id}/balance{query}", token=self.admin())
        assert reply.status == 200, reply.body
        return reply.json()

    async def history(self, member_id: int) -> list[Any]:
        """Every ledger row of the member, newest first, following cursors."""
        items: list[Any] = []
        cursor = ""
        while True:
            reply = await self.call(
                "GET", f"/members/{member_id}/transactions?limit=100{cursor}", token=self.admin()
            )
            assert reply.status == 200, reply.body
            page = reply.json()
            items.extend(page["items"])
            if page["next_cursor"] is None:
                return items
            cursor = f"&cursor={page['next_cursor']}"


@pytest.fixture
async def accounts(system: Settings, make_token: MakeToken) -> AsyncIterator[Accounts]:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield Accounts(session, f"{system.service_url('accounts')}/api/accounts/v1", make_token)
