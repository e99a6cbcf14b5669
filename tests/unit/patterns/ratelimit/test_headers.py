import pytest

from bookvault.patterns.ratelimit import (
    GCRA,
    Decision,
    FixedWindow,
    MalformedField,
    RatePolicy,
    SlidingLog,
    SlidingWindow,
    TokenBucket,
    format_ratelimit,
    format_ratelimit_policy,
    format_retry_after,
    parse_ratelimit,
    parse_ratelimit_policy,
    quota_exceeded_problem,
    rate_limit_headers,
)
from bookvault.patterns.ratelimit.headers import QUOTA_EXCEEDED, Token, parse_list

MEMBER = RatePolicy("member", 200, 2.0)


def decision(allowed: bool, remaining: int, reset_after: float, retry_after: float) -> Decision:
    return Decision(allowed, MEMBER.quota, remaining, reset_after, retry_after, MEMBER)


def test_policy_field_has_the_quota_and_window() -> None:
    assert format_ratelimit_policy(MEMBER) == '"member";q=200;w=2'
    assert format_ratelimit_policy(MEMBER, RatePolicy("daily", 5000, 86400)) == (
        '"member";q=200;w=2, "daily";q=5000;w=86400'
    )


def test_windows_are_whole_seconds_rounded_up() -> None:
    assert format_ratelimit_policy(RatePolicy("fast", 10, 0.25)) == '"fast";q=10;w=1'
    assert format_ratelimit_policy(RatePolicy("odd", 15, 1.5)) == '"odd";q=15;w=2'
    # Float noise around a whole number does not add a second.
    assert format_ratelimit_policy(RatePolicy("tb", 3, 3 * (1 / 3) * 2)) == '"tb";q=3;w=2'


def test_allowed_request_reports_remaining_and_time_to_full() -> None:
    assert format_ratelimit(decision(True, 42, 1.58, 0.0)) == '"member";r=42;t=2'
    assert rate_limit_headers(decision(True, 42, 1.58, 0.0)) == [
        ("RateLimit-Policy", '"member";q=200;w=2'),
        ("RateLimit", '"member";r=42;t=2'),
    ]


def test_refused_request_reports_retry_after_as_the_effective_window() -> None:
    headers = dict(rate_limit_headers(decision(False, 0, 2.0, 0.01)))
    assert headers["RateLimit"] == '"member";r=0;t=1'
    # The draft: Retry-After must not be earlier than the end of the effective window.
    assert headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    ("seconds", "value"),
    [(0.0, "0"), (0.001, "1"), (1.0, "1"), (1.0000001, "2"), (2.0000000000000004, "2"), (59.5, "60")],
)
def test_retry_after_is_whole_seconds_rounded_up(seconds: float, value: str) -> None:
    assert format_retry_after(seconds) == value


def test_our_fields_parse_as_the_draft_defines_them() -> None:
    refused = decision(False, 3, 1.5, 0.3)
    headers = dict(rate_limit_headers(refused))
    assert parse_ratelimit_policy(headers["RateLimit-Policy"]) == {"member": {"q": 200, "w": 2}}
    assert parse_ratelimit(headers["RateLimit"]) == {"member": {"r": 3, "t": 1}}
    assert int(headers["Retry-After"]) >= parse_ratelimit(headers["RateLimit"])["member"]["t"]  # type: ignore[operator]


def test_fields_for_every_algorithm_parse() -> None:
    for algorithm in (
        FixedWindow(100, 1),
        SlidingWindow(100, 60),
        SlidingLog(5, 0.5),
        TokenBucket(100, 200),
        TokenBucket(10, 15),
        GCRA(7, 3.0),
    ):
        policy = RatePolicy("p", algorithm.quota, algorithm.window)
        parsed = parse_ratelimit_policy(format_ratelimit_policy(policy))
        assert parsed["p"]["q"] == algorithm.quota
        assert parsed["p"]["w"] >= algorithm.window  # type: ignore[operator]


@pytest.mark.parametrize(
    "value",
    [
        '"burst";q=100;w=60,"daily";q=1000;w=86400',
        '"peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:',
        '"permin";q=50;w=60, "perhr";q=1000;w=3600',
    ],
)
def test_the_drafts_own_policy_examples_parse(value: str) -> None:
    assert parse_ratelimit_policy(value)


def test_the_drafts_own_ratelimit_examples_parse() -> None:
    assert parse_ratelimit('"default";r=50;t=30') == {"default": {"r": 50, "t": 30}}
    assert parse_ratelimit('"default";r=999;pk=:dHJpYWwxMjEzMjM=:') == {
        "default": {"r": 999, "pk": b"trial121323"}
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("policy", "default;q=100;w=10", "must be a String"),  # draft-08 and earlier used tokens
        ("policy", '"default";w=10', "lacks the required 'q'"),
        ("policy", '"default";q=1.5', "q must be an Integer"),
        ("policy", '"default";q=10;w=0', "w must be an Integer >= 1"),
        ("policy", '"default";q=10;qu=requests', "qu must be a String"),
        ("policy", "", "must not be empty"),
        ("ratelimit", '"default";r=-1', "r must be an Integer >= 0"),
        ("ratelimit", '"default";t=1', "lacks the required 'r'"),
        ("ratelimit", '"default";r=1;pk="x"', "pk must be a Byte Sequence"),
        ("ratelimit", '"default";r=1,', "trailing comma"),
        ("ratelimit", '"default;r=1', "unterminated string"),
        ("ratelimit", '"default";r=1 "other";r=2', "expected ','"),
        ("ratelimit", '("a" "b");r=1', "inner lists"),
        ("ratelimit", '"a";r=1234567890123456', "longer than 15 digits"),
    ],
)
def test_malformed_fields_are_rejected(field: str, value: str, message: str) -> None:
    parse = parse_ratelimit_policy if field == "policy" else parse_ratelimit
    with pytest.raises(MalformedField, match=message):
        parse(value)


def test_list_parser_reads_every_bare_item_type() -> None:
    assert parse_list('tok;a=1;b=-2.5;c="s\\"q";d=?0;e=:aGk=:;f, "x"') == [
        (Token("tok"), {"a": 1, "b": -2.5, "c": 's"q', "d": False, "e": b"hi", "f": True}),
        ("x", {}),
    ]
    assert isinstance(parse_list("tok")[0][0], Token)
    assert not isinstance(parse_list('"tok"')[0][0], Token)


def test_quota_exceeded_problem_names_the_violated_policies() -> None:
    refused, passed = decision(False, 0, 2.0, 0.5), decision(True, 5, 1.0, 0.0)
    assert quota_exceeded_problem(refused, passed) == {
        "type": QUOTA_EXCEEDED,
        "title": "Request cannot be satisfied as assigned quota has been exceeded",
        "status": 429,
        "violated-policies": ["member"],
    }
