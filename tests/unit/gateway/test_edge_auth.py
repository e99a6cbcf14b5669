import base64
import json

import jwt
import pytest

from bookvault.auth import Principal, TokenCodec
from bookvault.config import Settings
from bookvault.gateway.auth import authenticate, authorise, member_in_path
from bookvault.gateway.exchange import GatewayProblem
from bookvault.gateway.routing import RouteTable

KEY = "k" * 48
CODEC = TokenCodec(KEY)
ROUTES = {route.service: route for route in RouteTable.from_settings(Settings()).routes}
MEMBER = Principal("7", "member")
ADMIN = Principal("1", "admin")


def _segment(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _alg_none() -> str:
    claims = {"sub": "7", "role": "admin", "iss": "bookvault", "exp": 4_000_000_000}
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims)}."


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(TokenCodec("x" * 48).sign("7", "member"), id="forged-signature"),
        pytest.param(CODEC.sign("7", "member")[:-2] + "AA", id="tampered-signature"),
        pytest.param(_alg_none(), id="alg-none"),
        pytest.param(CODEC.sign("7", "member", ttl_s=-5), id="expired"),
        pytest.param(jwt.encode({"sub": "7", "role": "member", "iss": "bookvault"}, KEY), id="missing-exp"),
        pytest.param("not.a.jwt", id="garbage"),
    ],
)
def test_bad_tokens_are_401_with_a_challenge(token: str) -> None:
    with pytest.raises(GatewayProblem) as caught:
        authenticate(CODEC, f"Bearer {token}")
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer ")


def test_other_schemes_are_401() -> None:
    with pytest.raises(GatewayProblem) as caught:
        authenticate(CODEC, "Basic dXNlcjpwYXNz")
    assert caught.value.status == 401


def test_internal_service_tokens_are_refused_at_the_edge() -> None:
    with pytest.raises(GatewayProblem) as caught:
        authenticate(CODEC, "Bearer " + CODEC.sign("borrowing", "service"))
    assert caught.value.status == 403


def test_good_tokens_and_no_token() -> None:
    assert authenticate(CODEC, "Bearer " + CODEC.sign("7", "member")) == MEMBER
    assert authenticate(CODEC, None) is None


@pytest.mark.parametrize(
    ("service", "method", "path"),
    [
        ("catalog", "GET", "/api/catalog/v1/books/1"),
        ("catalog", "HEAD", "/api/catalog/v1/books?genre=Poetry"),
    ],
)
def test_anonymous_catalog_reads_pass(service: str, method: str, path: str) -> None:
    authorise(ROUTES[service], method, path, None)


@pytest.mark.parametrize(
    ("service", "method", "path"),
    [
        ("catalog", "POST", "/api/catalog/v1/books"),
        ("catalog", "DELETE", "/api/catalog/v1/books/1"),
        ("borrowing", "GET", "/api/borrowing/v1/members/7/loans"),
        ("accounts", "GET", "/api/accounts/v1/members/7/balance"),
    ],
)
def test_everything_else_needs_a_token(service: str, method: str, path: str) -> None:
    with pytest.raises(GatewayProblem) as caught:
        authorise(ROUTES[service], method, path, None)
    assert caught.value.status == 401
    assert "WWW-Authenticate" in caught.value.headers


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("accounts", "/api/accounts/v1/members/8/balance"),
        ("accounts", "/api/accounts/v1/members/8"),
        ("accounts", "/api/accounts/v1/members/8/payments"),
        ("borrowing", "/api/borrowing/v1/members/8/loans"),
        ("accounts", "/api/accounts/v1/members/seven/summary"),
    ],
)
def test_a_member_is_refused_another_members_data(service: str, path: str) -> None:
    with pytest.raises(GatewayProblem) as caught:
        authorise(ROUTES[service], "GET", path, MEMBER)
    assert caught.value.status == 403


@pytest.mark.parametrize(
    ("service", "path", "principal"),
    [
        ("accounts", "/api/accounts/v1/members/7/balance", MEMBER),
        ("accounts", "/api/accounts/v1/members/007", MEMBER),
        ("borrowing", "/api/borrowing/v1/members/7/loans", MEMBER),
        ("borrowing", "/api/borrowing/v1/loans", MEMBER),
        ("accounts", "/api/accounts/v1/members", MEMBER),  # creating members: the service says no
        ("accounts", "/api/accounts/v1/members/8/balance", ADMIN),
        ("borrowing", "/api/borrowing/v1/members/8/loans", ADMIN),
    ],
)
def test_own_data_and_admins_pass(service: str, path: str, principal: Principal) -> None:
    authorise(ROUTES[service], "GET", path, principal)


def test_member_ids_are_read_from_member_scoped_paths_only() -> None:
    assert member_in_path("/api/accounts/v1/members/42/transactions") == "42"
    assert member_in_path("/api/borrowing/v1/members/42") == "42"
    assert member_in_path("/api/accounts/v1/members/") is None
    assert member_in_path("/api/catalog/v1/members/42") is None
