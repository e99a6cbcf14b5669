import base64
import json

import jwt
import pytest

from bookvault.auth import AuthError, Principal, TokenCodec

KEY = "k" * 64
NOW = 1_800_000_000


def _unsigned(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def test_signed_token_round_trips() -> None:
    codec = TokenCodec(KEY)
    assert codec.verify(codec.sign("42", "member")) == Principal("42", "member")


@pytest.mark.parametrize(
    ("token_factory", "reason"),
    [
        (lambda c: c.sign("1", "member", ttl_s=-10), "expired"),
        (lambda c: TokenCodec("x" * 48).sign("1", "member"), "Signature verification failed"),
        (lambda c: _unsigned({"sub": "1", "role": "admin", "iss": "bookvault", "exp": 4_000_000_000}), "alg"),
        (lambda c: jwt.encode({"sub": "1", "role": "admin", "iss": "bookvault"}, KEY), "exp"),
        (lambda c: jwt.encode({"sub": "1", "role": "root", "iss": "bookvault", "exp": 4e9}, KEY), "role"),
        (lambda c: jwt.encode({"sub": "1", "role": "admin", "iss": "evil", "exp": 4e9}, KEY), "issuer"),
        (
            lambda c: jwt.encode({"sub": "1", "role": "admin", "iss": "bookvault", "exp": 4e9}, KEY, "HS512"),
            "alg",
        ),
    ],
    ids=["expired", "wrong-key", "alg-none", "no-exp", "unknown-role", "wrong-issuer", "other-alg"],
)
def test_bad_tokens_are_refused(token_factory: object, reason: str) -> None:
    codec = TokenCodec(KEY)
    token = token_factory(codec)  # type: ignore[operator]
    with pytest.raises(AuthError, match=reason):
        codec.verify(token)


def test_header_must_be_bearer() -> None:
    codec = TokenCodec(KEY)
    assert codec.verify_header(None) is None
    with pytest.raises(AuthError, match="Bearer"):
        codec.verify_header("Basic dXNlcjpwYXNz")
    assert codec.verify_header("Bearer " + codec.sign("7", "admin")) == Principal("7", "admin")


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        TokenCodec("short")


def test_members_act_only_for_themselves() -> None:
    assert Principal("5", "member").may_act_for(5)
    assert not Principal("5", "member").may_act_for(6)
    assert Principal("1", "admin").may_act_for(6)
    assert Principal("borrowing", "service").may_act_for(6)


def test_member_subjects_compare_as_numbers() -> None:
    assert Principal("007", "member").may_act_for(7)
    assert not Principal("7a", "member").may_act_for(7)


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_verified_tokens_are_remembered_until_they_expire() -> None:
    import time

    clock = _Clock(time.time())
    codec = TokenCodec(KEY, now=clock)
    token = codec.sign("5", "member", ttl_s=60, now=clock.now)
    assert codec.verify(token) == Principal("5", "member")
    assert codec.verify(token) == Principal("5", "member")  # from the cache
    clock.now += 61
    with pytest.raises(AuthError, match="expired"):
        codec.verify(token)


def test_a_tampered_token_is_never_accepted_even_after_a_good_one() -> None:
    codec = TokenCodec(KEY)
    token = codec.sign("5", "member")
    codec.verify(token)
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-2]}AA"
    with pytest.raises(AuthError):
        codec.verify(forged)
    with pytest.raises(AuthError):  # failures are not remembered either
        codec.verify(forged)


def test_the_cache_is_bounded() -> None:
    codec = TokenCodec(KEY, cache_size=3)
    tokens = [codec.sign(str(n), "member") for n in range(10)]
    for token in tokens:
        codec.verify(token)
    assert len(codec._verified) == 3
    assert codec.verify(tokens[0]) == Principal("0", "member")  # still verifiable, just not cached
