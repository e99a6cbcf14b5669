"""The codec's side of revocation: token ids, the check on every use (remembered or
not), and the longest lifetime it accepts. The Redis side is in
tests/integration/gateway/test_revocation_list.py."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bookvault.auth import AuthError, Principal, TokenCodec, VerifiedToken
from bookvault.cli import main

KEY = "k" * 48


class RevokedIds:
    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.asked = 0

    def is_revoked(self, token: VerifiedToken) -> bool:
        self.asked += 1
        return token.token_id in self.ids


def test_every_token_carries_its_own_id_and_issue_time() -> None:
    codec = TokenCodec(KEY)
    before = time.time()
    first, second = (
        codec.verify_token(codec.sign("5", "member")),
        codec.verify_token(codec.sign("5", "member")),
    )
    assert first.token_id
    assert second.token_id
    assert first.token_id != second.token_id
    assert first.issued_at is not None
    assert before - 0.001 <= first.issued_at <= time.time()


def test_a_remembered_token_is_still_refused_once_revoked() -> None:
    revoked = RevokedIds()
    codec = TokenCodec(KEY, revocations=revoked)
    token, other = codec.sign("5", "member"), codec.sign("5", "member")
    assert codec.verify(token) == Principal("5", "member")
    assert codec.verify(token) == Principal("5", "member")  # now from the verified-token cache
    token_id = codec.verify_token(token).token_id
    assert token_id is not None

    revoked.ids.add(token_id)

    with pytest.raises(AuthError, match="revoked"):
        codec.verify(token)
    with pytest.raises(AuthError, match="revoked"):
        codec.verify_header(f"Bearer {token}")
    assert codec.verify(other) == Principal("5", "member")


def test_tokens_meant_to_live_longer_than_allowed_are_refused() -> None:
    codec = TokenCodec(KEY, max_ttl_s=3600)
    assert codec.verify(codec.sign("5", "member", ttl_s=3600)) == Principal("5", "member")
    with pytest.raises(AuthError, match="live at most 3600s"):
        codec.verify(codec.sign("5", "member", ttl_s=3601))


def test_the_longest_lifetime_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenCodec(KEY, max_ttl_s=0)


def test_the_cli_will_not_mint_a_token_the_gateway_would_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOOKVAULT_CONFIG", os.devnull)
    monkeypatch.setenv("BOOKVAULT_JWT_SECRET", KEY)
    monkeypatch.setenv("BOOKVAULT_JWT_MAX_TTL_S", "600")
    assert main(["token", "--member", "7", "--ttl", "601", "--state-dir", str(tmp_path)]) == 1
    assert "at most 600 s" in capsys.readouterr().err
    assert main(["token", "--member", "7", "--ttl", "600", "--state-dir", str(tmp_path)]) == 0


def test_revoking_from_the_cli_needs_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOOKVAULT_CONFIG", os.devnull)
    monkeypatch.delenv("BOOKVAULT_REDIS_URL", raising=False)
    assert main(["token", "--member", "7", "--revoke", "--state-dir", str(tmp_path)]) == 1
    assert "no Redis" in capsys.readouterr().err


def test_issue_times_are_rounded_down_so_a_token_never_looks_issued_after_a_revocation() -> None:
    codec = TokenCodec(KEY)
    second = float(int(time.time()))
    # Signed 0.2 ms before a revocation at second + 0.0008: rounding to the nearest
    # millisecond would make it look issued at second + 0.001, after it, and escape.
    token = codec.sign("5", "member", now=second + 0.0006)
    assert codec.verify_token(token).issued_at == second
