"""Token revocation on a real Redis this module owns (so it may kill it): several
revocation lists in this process play several gateway processes, each with its own
Redis connections and pub/sub subscription, exactly as each gateway has.

Waiting for pub/sub delivery polls with a generous deadline: correctness with a
bound, never a latency measurement.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial

import pytest
from redis.asyncio import Redis
from tests.support.redis_server import OwnRedis, running_redis

from bookvault.auth import AuthError, Principal, TokenCodec
from bookvault.config import Settings
from bookvault.gateway.revocations import SUBJECTS_KEY, TOKENS_KEY, RevocationList, revocation_list

KEY = "revocation-test-signing-key-0123456789"
_DEADLINE_S = 10.0


@pytest.fixture
def private_redis() -> Iterator[OwnRedis]:
    with running_redis() as server:
        yield server


@pytest.fixture
async def redis(private_redis: OwnRedis) -> AsyncIterator[Redis]:
    client = Redis.from_url(private_redis.url)
    yield client
    await client.aclose()


Gateway = tuple[RevocationList, TokenCodec]


@pytest.fixture
async def gateway_process(private_redis: OwnRedis) -> AsyncIterator[Callable[..., Awaitable[Gateway]]]:
    """Makes what one gateway process has: its revocation list and its codec."""
    started: list[RevocationList] = []

    async def make(*, fail_closed: bool = False, wait_live: bool = True) -> Gateway:
        settings = Settings(redis_url=private_redis.url, revocation_fail_closed=fail_closed)
        revocations = revocation_list(settings)
        assert revocations is not None
        await revocations.start()
        started.append(revocations)
        if wait_live:
            await _eventually(lambda: revocations.live, "the revocation list never became current")
        codec = TokenCodec(KEY, revocations=revocations, max_ttl_s=settings.jwt_max_ttl_s)
        return revocations, codec

    yield make
    for revocations in started:
        await revocations.close()


async def _eventually(condition: Callable[[], bool], failure: str) -> None:
    deadline = time.monotonic() + _DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(failure)
        await asyncio.sleep(0.01)  # waiting for pub/sub delivery, not timing an assertion


def _refuses(codec: TokenCodec, token: str) -> bool:
    """True when `codec` refuses `token` as revoked (any other refusal fails the test)."""
    try:
        codec.verify(token)
    except AuthError as exc:
        reason = str(exc)
    else:
        return False
    if "revoked" not in reason:
        raise AssertionError(f"refused, but not as revoked: {reason}")
    return True


def _member() -> str:
    return str(10**9 + uuid.uuid4().int % 10**9)


async def test_a_revoked_token_is_refused_by_every_process_even_from_the_verified_cache(
    gateway_process: Callable[..., Awaitable[Gateway]],
) -> None:
    (list_a, codec_a), (_, codec_b) = await gateway_process(), await gateway_process()
    member = _member()
    token, other = TokenCodec(KEY).sign(member, "member"), TokenCodec(KEY).sign(member, "member")
    # Both processes have verified (and so remembered) both tokens.
    for codec in (codec_a, codec_b):
        assert codec.verify(token) == codec.verify(other) == Principal(member, "member")
    verified = codec_a.verify_token(token)
    assert verified.token_id is not None

    await list_a.revoke_token(verified.token_id, verified.expires_at)

    assert _refuses(codec_a, token)  # the revoking process: at once
    await _eventually(lambda: _refuses(codec_b, token), "the other process still accepts the token")
    assert codec_a.verify(other) == codec_b.verify(other) == Principal(member, "member")


async def test_revoking_a_subject_refuses_its_older_tokens_only(
    gateway_process: Callable[..., Awaitable[Gateway]],
) -> None:
    (list_a, codec_a), (_, codec_b) = await gateway_process(), await gateway_process()
    member, bystander = _member(), _member()
    now = time.time()
    signer = TokenCodec(KEY)
    old = signer.sign(member, "member", now=now - 60)
    old_padded = signer.sign("0" + member, "member", now=now - 60)  # the same member, spelled "0…"
    neighbour = signer.sign(bystander, "member", now=now - 60)
    for codec in (codec_a, codec_b):
        codec.verify(old)

    await list_a.revoke_subject(member, now - 1)
    fresh = signer.sign(member, "member", now=now)  # issued after the cut-off: a new login

    for codec in (codec_a, codec_b):
        await _eventually(partial(_refuses, codec, old), "the member's old token is still accepted")
        assert _refuses(codec, old_padded)
        assert codec.verify(fresh) == Principal(member, "member")
        assert codec.verify(neighbour) == Principal(bystander, "member")


async def test_a_process_started_later_loads_revocations_made_before_it(
    gateway_process: Callable[..., Awaitable[Gateway]],
) -> None:
    first, _ = await gateway_process()
    member = _member()
    token = TokenCodec(KEY).sign(member, "member")
    verified = TokenCodec(KEY).verify_token(token)
    assert verified.token_id is not None
    await first.revoke_token(verified.token_id, verified.expires_at)

    _, late_codec = await gateway_process()  # never heard the announcement

    assert _refuses(late_codec, token)


async def test_redis_keeps_each_revocation_for_its_tokens_remaining_life_only(
    gateway_process: Callable[..., Awaitable[Gateway]], redis: Redis
) -> None:
    revocations, _ = await gateway_process()
    now = time.time()
    await revocations.revoke_token("short-lived", now + 30)
    await revocations.revoke_token("long-lived", now + 600)

    ttl_ms = await redis.pttl(TOKENS_KEY)
    assert 30_000 < ttl_ms <= 600_000  # the whole set goes when its longest-lived entry does
    assert await redis.zscore(TOKENS_KEY, "short-lived") == pytest.approx(now + 30)

    # A later write drops what has run out (here: written with an expiry already past).
    await revocations.revoke_token("already-expired", now - 5)
    await revocations.revoke_token("another", now + 60)
    assert await redis.zscore(TOKENS_KEY, "already-expired") is None

    await revocations.revoke_subject("42", now)
    subject_ttl_ms = await redis.pttl(SUBJECTS_KEY)
    max_ttl_ms = Settings().jwt_max_ttl_s * 1000
    assert max_ttl_ms - 60_000 < subject_ttl_ms <= max_ttl_ms  # tokens issued before now die by then


async def test_while_redis_is_down_the_last_known_list_applies_and_the_gap_is_closed_after(
    gateway_process: Callable[..., Awaitable[Gateway]], private_redis: OwnRedis
) -> None:
    (list_a, codec_a), (list_b, codec_b) = await gateway_process(), await gateway_process()
    signer = TokenCodec(KEY)
    known, missed = signer.sign(_member(), "member"), signer.sign(_member(), "member")
    known_id, missed_id = signer.verify_token(known), signer.verify_token(missed)
    assert known_id.token_id is not None
    assert missed_id.token_id is not None
    await list_a.revoke_token(known_id.token_id, known_id.expires_at)
    await _eventually(lambda: _refuses(codec_b, known), "the revocation never arrived")

    private_redis.kill()
    await _eventually(lambda: not list_b.live, "the lost subscription went unnoticed")
    assert _refuses(codec_b, known)  # still applied: the last known list
    assert codec_b.verify(missed).role == "member"
    assert not list_b.unavailable  # fail-open by default: no request is refused for it

    private_redis.start()  # back, but empty: as after a restart without persistence
    await _eventually(lambda: list_a.live and list_b.live, "the lists never became current again")
    # Revocations after the outage flow again.
    await list_a.revoke_token(missed_id.token_id, missed_id.expires_at)
    await _eventually(lambda: _refuses(codec_b, missed), "the revocation after the outage never arrived")
    assert _refuses(codec_a, known)  # nothing forgotten
    assert _refuses(codec_b, known)


async def test_a_revocation_stored_while_a_process_was_deaf_is_loaded_when_it_hears_again(
    gateway_process: Callable[..., Awaitable[Gateway]], private_redis: OwnRedis, redis: Redis
) -> None:
    (list_a, _), (list_b, codec_b) = await gateway_process(), await gateway_process()
    signer = TokenCodec(KEY)
    token = signer.sign(_member(), "member")
    verified = signer.verify_token(token)
    assert verified.token_id is not None
    # Cut only B's subscription: Redis stays up, A revokes, B misses the message.
    await redis.client_kill_filter(_type="pubsub")
    await list_a.revoke_token(verified.token_id, verified.expires_at)
    await _eventually(lambda: _refuses(codec_b, token), "the missed revocation was never loaded")
    # The first load, and the one after resubscribing.
    await _eventually(lambda: list_b.reloads >= 2, "no reload after the subscription came back")


async def test_fail_closed_refuses_to_trust_tokens_until_the_list_is_current(
    gateway_process: Callable[..., Awaitable[Gateway]], private_redis: OwnRedis
) -> None:
    revocations, _ = await gateway_process(fail_closed=True)
    assert not revocations.unavailable
    private_redis.kill()
    await _eventually(lambda: revocations.unavailable, "fail-closed never noticed the outage")
    private_redis.start()
    await _eventually(lambda: not revocations.unavailable, "fail-closed never recovered")
