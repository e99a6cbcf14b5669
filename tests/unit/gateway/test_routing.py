import pytest

from bookvault.config import Settings
from bookvault.gateway.routing import Route, RouteTable, has_dot_segment

TABLE = RouteTable.from_settings(Settings(catalog_port=9001, borrowing_port=9002, accounts_port=9003))


@pytest.mark.parametrize(
    ("path", "service", "origin"),
    [
        ("/api/catalog/v1/books/1", "catalog", "http://127.0.0.1:9001"),
        ("/api/catalog/v1", "catalog", "http://127.0.0.1:9001"),
        ("/api/borrowing/v1/loans", "borrowing", "http://127.0.0.1:9002"),
        ("/api/accounts/v1/members/7/balance", "accounts", "http://127.0.0.1:9003"),
    ],
)
def test_public_prefixes_route_to_their_service(path: str, service: str, origin: str) -> None:
    route = TABLE.match(path)
    assert route is not None
    assert (route.service, route.origin) == (service, origin)


@pytest.mark.parametrize(
    "path",
    [
        "/internal/loans",
        "/healthz",
        "/api/catalog",
        "/api/catalog/v2/books",
        "/api/catalog/v10/books",
        "/api/catalogue/v1/books",
        "/api/payments/v1/x",
        "/api//v1",
        "/",
        "",
    ],
)
def test_anything_else_has_no_route(path: str) -> None:
    assert TABLE.match(path) is None


def test_only_catalog_reads_are_anonymous() -> None:
    assert [route.service for route in TABLE.routes if route.anonymous_reads] == ["catalog"]


@pytest.mark.parametrize(
    ("path", "dotted"),
    [
        ("/api/catalog/v1/../../internal/x", True),
        ("/api/catalog/v1/./books", True),
        ("/api/catalog/v1/books/..", True),
        ("/api/catalog/v1/books/.hidden", False),
        ("/api/catalog/v1/books/v1.2", False),
        ("/api/catalog/v1/books/...", False),
    ],
)
def test_dot_segments_are_recognised(path: str, dotted: bool) -> None:
    assert has_dot_segment(path) is dotted


@pytest.mark.parametrize("prefix", ["/x/v1", "/api/x/v1/", "api/x/v1", "/api//v1"])
def test_malformed_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="must look like"):
        RouteTable([Route("x", prefix, "http://h:1", anonymous_reads=False)])
