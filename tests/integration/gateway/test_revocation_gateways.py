"""Revocation through real gateway processes (granian, as the stack runs them), in
front of the session's real services and sharing its Redis: a token revoked at one
gateway is refused with 401 by the other, and by the session's own gateway too.

Subjects are fresh numbers per test: a revocation of "1" would log out the admin the
other tests use.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from tests.support.processes import Process, free_port

from bookvault.auth import TokenCodec
from bookvault.cli import main
from bookvault.config import Settings

pytestmark = pytest.mark.stack

# How long a revocation may take to travel Redis pub/sub to another process before
# the test calls it lost. Correctness with a bound, not a latency measurement.
_DELIVERY_DEADLINE_S = 10.0
_BOOKS = "/api/catalog/v1/books?limit=1"


def _revocations_live(status: int, body: str) -> bool:
    # Ready for these tests once its revocation list is current.
    return status == 200 and "bookvault_gateway_revocations_live 1.0" in body


@pytest.fixture(scope="module")
async def gateways(system: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[str]]:
    """Two more gateway processes, plus the session's own: three that must all agree."""
    workdir = tmp_path_factory.mktemp("revocation")
    each = (dataclasses.replace(system, gateway_port=free_port()) for _ in range(2))
    async with Process.running("gateway", each, workdir, "/metrics", _revocations_live) as started:
        yield [process.url for process in started] + [system.gateway_url]


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session


@pytest.fixture
def signer(token_codec: TokenCodec) -> TokenCodec:
    return token_codec


def _member() -> str:
    return str(2 * 10**9 + uuid.uuid4().int % 10**9)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _status(client: aiohttp.ClientSession, url: str, token: str) -> int:
    async with client.get(url + _BOOKS, headers=_bearer(token)) as resp:
        if resp.status == 401:
            problem = await resp.json(content_type="application/problem+json")
            assert problem["status"] == 401
            assert "revoked" in problem["detail"]
        return resp.status


async def _refused_everywhere(client: aiohttp.ClientSession, urls: list[str], token: str) -> None:
    deadline = time.monotonic() + _DELIVERY_DEADLINE_S
    pending = list(urls)
    while pending:
        pending = [url for url in pending if await _status(client, url, token) != 401]
        if pending and time.monotonic() > deadline:
            raise AssertionError(f"still accepted by {pending} after {_DELIVERY_DEADLINE_S}s")
        await asyncio.sleep(0.01)  # waiting for pub/sub delivery, not timing an assertion


async def _post(
    client: aiohttp.ClientSession, url: str, token: str | None, payload: Any = None
) -> tuple[int, Any]:
    headers = _bearer(token) if token else {}
    async with client.post(url, headers=headers, json=payload) as resp:
        body = await resp.read()
        return resp.status, json.loads(body) if body else None


async def test_logout_at_one_gateway_is_refused_by_every_gateway(
    gateways: list[str], client: aiohttp.ClientSession, signer: TokenCodec
) -> None:
    member = _member()
    token, other_session = signer.sign(member, "member"), signer.sign(member, "member")
    for url in gateways:  # accepted, and so remembered by each gateway's verified-token cache
        assert await _status(client, url, token) == 200

    status, _ = await _post(client, gateways[0] + "/api/auth/v1/logout", token)

    assert status == 204
    assert await _status(client, gateways[0], token) == 401  # the gateway that logged out: at once
    await _refused_everywhere(client, gateways, token)
    for url in gateways:  # the member's other session is untouched
        assert await _status(client, url, other_session) == 200


async def test_an_admin_revokes_all_of_a_members_tokens(
    gateways: list[str], client: aiohttp.ClientSession, signer: TokenCodec, make_token: Any
) -> None:
    member = _member()
    first, second = signer.sign(member, "member"), signer.sign(member, "member")
    for url in gateways:
        assert await _status(client, url, first) == 200

    status, created = await _post(
        client, gateways[1] + "/api/auth/v1/revocations", make_token("1", "admin"), {"subject": member}
    )

    assert status == 201
    assert created["kind"] == "subject"
    assert created["subject"] == member
    await _refused_everywhere(client, gateways, first)
    await _refused_everywhere(client, gateways, second)
    fresh = signer.sign(member, "member")  # logging in again afterwards works
    for url in gateways:
        assert await _status(client, url, fresh) == 200


async def test_an_admin_revokes_one_token_by_id(
    gateways: list[str], client: aiohttp.ClientSession, signer: TokenCodec, make_token: Any
) -> None:
    member = _member()
    token, kept = signer.sign(member, "member"), signer.sign(member, "member")
    token_id = signer.verify_token(token).token_id

    status, created = await _post(
        client, gateways[2] + "/api/auth/v1/revocations", make_token("1", "admin"), {"token_id": token_id}
    )

    assert status == 201
    assert created["token_id"] == token_id
    await _refused_everywhere(client, gateways, token)
    assert await _status(client, gateways[0], kept) == 200


async def test_bookvault_token_revoke_logs_a_member_out_everywhere(
    gateways: list[str],
    client: aiohttp.ClientSession,
    signer: TokenCodec,
    system: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    member = _member()
    token = signer.sign(member, "member")
    assert await _status(client, gateways[0], token) == 200
    monkeypatch.setenv("BOOKVAULT_CONFIG", os.devnull)
    monkeypatch.setenv("BOOKVAULT_REDIS_URL", system.redis_url or "")

    argv = ["token", "--member", member, "--revoke", "--state-dir", str(system.state_dir)]
    assert await asyncio.to_thread(main, argv) == 0  # the CLI runs its own event loop

    assert f"revoked every token of member {member}" in capsys.readouterr().out
    await _refused_everywhere(client, gateways, token)


@pytest.mark.parametrize(
    ("who", "payload", "status"),
    [
        pytest.param("member", {"subject": "5"}, 403, id="members-may-not-revoke-others"),
        pytest.param(None, {"subject": "5"}, 401, id="anonymous"),
        pytest.param("admin", {}, 422, id="neither-token-nor-subject"),
        pytest.param("admin", {"token_id": "a", "subject": "5"}, 422, id="both"),
        pytest.param("admin", {"subject": "5", "issued_before": "2999-01-01T00:00:00Z"}, 422, id="future"),
        pytest.param("admin", {"subject": "5", "issued_before": "yesterday"}, 422, id="not-a-time"),
        pytest.param("admin", {"subject": "5", "role": "x"}, 422, id="unknown-field"),
        pytest.param("admin", "not an object", 422, id="not-an-object"),
    ],
)
async def test_revocation_requests_that_are_refused(
    gateways: list[str],
    client: aiohttp.ClientSession,
    make_token: Any,
    who: str | None,
    payload: Any,
    status: int,
) -> None:
    token = None if who is None else make_token(_member() if who == "member" else "1", who)
    got, problem = await _post(client, gateways[0] + "/api/auth/v1/revocations", token, payload)
    assert got == status
    assert problem["status"] == status
    assert problem["detail"]


async def test_other_methods_and_paths_under_auth(gateways: list[str], client: aiohttp.ClientSession) -> None:
    async with client.get(gateways[0] + "/api/auth/v1/revocations") as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"
    async with client.post(gateways[0] + "/api/auth/v1/nothing-here") as resp:
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"


async def test_a_token_meant_to_outlive_the_gateways_limit_is_refused(
    gateways: list[str], client: aiohttp.ClientSession, signer: TokenCodec, system: Settings
) -> None:
    token = signer.sign(_member(), "member", ttl_s=system.jwt_max_ttl_s + 60)
    async with client.get(gateways[0] + _BOOKS, headers=_bearer(token)) as resp:
        assert resp.status == 401
        problem = await resp.json(content_type="application/problem+json")
        assert "live at most" in problem["detail"]
