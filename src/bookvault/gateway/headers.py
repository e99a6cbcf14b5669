"""Header handling at the bytes level, in one pass per message.

ASGI hands headers over as `(bytes, bytes)` pairs with lower-case names. The
gateway reads the few it acts on while copying the end-to-end rest, and never
forwards hop-by-hop headers (RFC 9110 §7.6.1) in either direction, including
every header a `Connection` header names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

__all__ = [
    "HOP_BY_HOP",
    "InboundHead",
    "connection_named",
    "filter_response_headers",
    "read_request_headers",
]

HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"proxy-connection",
        b"keep-alive",
        b"te",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"trailer",
    }
)

# Request headers the gateway sets itself for the upstream: the client's copies
# are read (some only from trusted proxies) but never passed on as they came.
# Content-Length is recomputed from the body that was read; Expect was already
# answered by the server that received it.
_GATEWAY_OWNED: frozenset[bytes] = frozenset(
    {
        b"host",
        b"content-length",
        b"expect",
        b"x-request-id",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
        b"x-real-ip",
    }
)
_NOT_FORWARDED = HOP_BY_HOP | _GATEWAY_OWNED

# The gateway adds its own X-Request-Id to every response, so the upstream's
# echo of it is dropped to avoid sending it twice.
_RESPONSE_DROPPED = HOP_BY_HOP | {b"x-request-id"}


@dataclasses.dataclass(slots=True)
class InboundHead:
    """What the gateway needs from a request's headers, read in one pass."""

    forward: list[tuple[str, str]]  # end-to-end headers for the upstream, as aiohttp takes them
    authorization: str | None = None
    content_length: bytes | None = None
    chunked: bool = False  # a Transfer-Encoding was sent: the body length is unknown up front
    expects_continue: bool = False  # the client waits for 100 Continue before sending its body
    request_id: bytes | None = None
    host: bytes | None = None
    forwarded_for: list[bytes] = dataclasses.field(default_factory=list)
    forwarded_proto: bytes | None = None
    forwarded_host: bytes | None = None


def connection_named(values: Iterable[bytes]) -> frozenset[bytes]:
    """Header names listed in `Connection` values (comma separated, any case)."""
    return frozenset(
        token.strip().lower() for value in values for token in value.split(b",") if token.strip()
    )


def read_request_headers(raw: Iterable[tuple[bytes, bytes]]) -> InboundHead:
    head = InboundHead(forward=[])
    forward = head.forward
    connection: list[bytes] | None = None
    for name, value in raw:
        if name not in _NOT_FORWARDED:
            text = value.decode("latin-1")
            forward.append((name.decode("latin-1"), text))
            if name == b"authorization" and head.authorization is None:
                head.authorization = text
            continue
        # Rare path: a header the gateway owns or that is hop-by-hop.
        if name == b"content-length":
            head.content_length = value
        elif name == b"transfer-encoding":
            head.chunked = True
        elif name == b"connection":
            connection = connection or []
            connection.append(value)
        elif name == b"x-request-id":
            head.request_id = value
        elif name == b"host":
            head.host = value
        elif name == b"expect":
            head.expects_continue = value.lower() == b"100-continue"
        elif name == b"x-forwarded-for":
            head.forwarded_for.append(value)
        elif name == b"x-forwarded-proto":
            head.forwarded_proto = value
        elif name == b"x-forwarded-host":
            head.forwarded_host = value
    if connection:
        named = {name.decode("latin-1") for name in connection_named(connection)}
        head.forward = [pair for pair in forward if pair[0] not in named]
        if "authorization" in named:
            head.authorization = None
    return head


def filter_response_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream's end-to-end response headers, names lower-cased for ASGI."""
    kept: list[tuple[bytes, bytes]] = []
    connection: list[bytes] | None = None
    for name, value in raw:
        lowered = name.lower()
        if lowered in _RESPONSE_DROPPED:
            if lowered == b"connection":
                connection = connection or []
                connection.append(value)
            continue
        kept.append((lowered, value))
    if connection:
        named = connection_named(connection)
        kept = [pair for pair in kept if pair[0] not in named]
    return kept
