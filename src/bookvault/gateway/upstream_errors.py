"""aiohttp's exceptions, translated once into what the client is told.

    timeout      no complete answer in time (connect or total)   → 504
    connect      nobody listening, or the host is unreachable     → 503 + Retry-After
    reset        the connection dropped mid-exchange              → 503 + Retry-After
    protocol     the upstream answered something that is not HTTP → 502

The detail names the service and the kind, never an address or a stack trace.
"""

from __future__ import annotations

import aiohttp

from bookvault.gateway.exchange import GatewayProblem

__all__ = ["RETRY_AFTER_S", "UPSTREAM_ERRORS", "error_kind", "problem_for"]

# Upstream restarts and brief outages last seconds; a client retrying sooner
# would only add load to a recovering service.
RETRY_AFTER_S = 1
UPSTREAM_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError, ConnectionError)

_STATUS = {"timeout": 504, "connect": 503, "reset": 503, "protocol": 502}
_DETAIL = {
    "timeout": "did not answer in time",
    "connect": "is not reachable",
    "reset": "dropped the connection",
    "protocol": "sent an invalid response",
}


def error_kind(exc: BaseException) -> str:
    # Order matters: aiohttp's timeout errors are also connection errors.
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect"
    if isinstance(exc, aiohttp.ClientConnectionError | ConnectionError):
        return "reset"
    return "protocol"


def problem_for(service: str, exc: BaseException) -> GatewayProblem:
    kind = error_kind(exc)
    status = _STATUS[kind]
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return GatewayProblem(
        status, f"the {service} service {_DETAIL[kind]}", headers=headers, upstream_error=kind
    )
