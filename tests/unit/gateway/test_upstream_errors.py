import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from bookvault.gateway.upstream_errors import RETRY_AFTER_S, problem_for

KEY = ConnectionKey("127.0.0.1", 8081, False, True, None, None, None)


@pytest.mark.parametrize(
    ("exc", "status", "kind"),
    [
        (TimeoutError(), 504, "timeout"),
        (aiohttp.ConnectionTimeoutError(), 504, "timeout"),
        (aiohttp.SocketTimeoutError(), 504, "timeout"),
        (aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "refused")), 503, "connect"),
        (aiohttp.ServerDisconnectedError(), 503, "reset"),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), 503, "reset"),
        (ConnectionResetError(), 503, "reset"),
        (aiohttp.ClientPayloadError("truncated"), 502, "protocol"),
    ],
)
def test_upstream_failures_become_problems(exc: BaseException, status: int, kind: str) -> None:
    problem = problem_for("catalog", exc)
    assert (problem.status, problem.upstream_error) == (status, kind)
    assert "catalog" in problem.detail
    assert "127.0.0.1" not in problem.detail
    if status == 503:
        assert problem.headers["Retry-After"] == str(RETRY_AFTER_S)
    else:
        assert "Retry-After" not in problem.headers
