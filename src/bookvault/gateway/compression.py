"""The compression stage: br, zstd or gzip as the client's `Accept-Encoding` prefers.

A reply is encoded only when all of these hold, otherwise it passes unchanged:
- the request is not HEAD and the status carries a body (not 1xx, 204, 206 or 304);
- the body is buffered (streamed bodies, over the proxy's 64 KiB buffer, pass as is)
  and at least `MIN_BYTES` long: below that the framing costs more than it saves;
- the upstream did not encode it already (no `Content-Encoding`), did not forbid it
  (`Cache-Control: no-transform`), and its media type is text-like (JSON, text, XML).

Every reply that could be encoded gets `Vary: Accept-Encoding` (merged into an
existing `Vary`), whatever this client asked for, so a downstream cache keeps the
variants apart. An upstream `ETag` gets the coding as a suffix (`"abc"` becomes
`"abc-br"`): a strong validator names exact bytes, and the encoded bytes differ.

With the response cache in front, a miss is encoded once here and the cache keeps
the encoded bytes, one variant per coding; hits are never encoded again.
"""

from __future__ import annotations

from bookvault.gateway.exchange import Exchange, Handler, Reply
from bookvault.patterns.compression import CODINGS, encode, negotiate

__all__ = ["MIN_BYTES", "Compression", "compressible", "merge_vary", "suffix_etag"]

MIN_BYTES = 1024
_NO_BODY_STATUS = frozenset({204, 206, 304})
_TEXT_LIKE_SUFFIXES = (b"json", b"xml", b"javascript", b"csv", b"yaml")


def compressible(content_type: bytes | None) -> bool:
    """Whether a body of this media type is worth encoding (text-like, not already packed)."""
    if not content_type:
        return False
    media = content_type.partition(b";")[0].strip().lower()
    return media.startswith(b"text/") or media.endswith(_TEXT_LIKE_SUFFIXES)


def merge_vary(headers: list[tuple[bytes, bytes]], name: bytes) -> None:
    """Add `name` to the reply's Vary, unless it is there already or Vary is `*`."""
    for index, (key, value) in enumerate(headers):
        if key != b"vary":
            continue
        tokens = [token.strip().lower() for token in value.split(b",")]
        if b"*" in tokens or name.lower() in tokens:
            return
        headers[index] = (key, value + b", " + name)
        return
    headers.append((b"vary", name))


def suffix_etag(value: bytes, coding: str) -> bytes:
    """`"abc"` → `"abc-br"`, `W/"abc"` → `W/"abc-br"`; anything unquoted is left alone."""
    if value.endswith(b'"') and len(value) >= 2:
        return value[:-1] + b"-" + coding.encode("ascii") + b'"'
    return value


class Compression:
    """The pipeline stage. Stateless: safe to share between requests."""

    __slots__ = ("_available", "_min_bytes")

    def __init__(self, *, min_bytes: int = MIN_BYTES, codings: tuple[str, ...] = CODINGS) -> None:
        self._min_bytes = min_bytes
        self._available = codings

    def choose(self, exchange: Exchange) -> str | None:
        """The coding this request would get for an encodable body."""
        return negotiate(_request_header(exchange, "accept-encoding"), self._available)

    async def __call__(self, exchange: Exchange, call_next: Handler) -> Reply:
        reply = await call_next(exchange)
        if (
            exchange.method == "HEAD"
            or reply.stream is not None
            or reply.status < 200
            or reply.status in _NO_BODY_STATUS
            or len(reply.body) < self._min_bytes
        ):
            return reply
        content_type: bytes | None = None
        for key, value in reply.headers:
            if key == b"content-encoding" or key == b"content-range":
                return reply
            if key == b"cache-control" and b"no-transform" in value.lower():
                return reply
            if key == b"content-type":
                content_type = value
        if not compressible(content_type):
            return reply
        merge_vary(reply.headers, b"Accept-Encoding")
        coding = self.choose(exchange)
        if coding is None:
            return reply
        body = encode(coding, reply.body)
        headers: list[tuple[bytes, bytes]] = []
        for key, value in reply.headers:
            if key == b"content-length":
                continue
            headers.append((key, suffix_etag(value, coding) if key == b"etag" else value))
        headers.append((b"content-encoding", coding.encode("ascii")))
        headers.append((b"content-length", str(len(body)).encode("ascii")))
        reply.headers = headers
        reply.body = body
        return reply


def _request_header(exchange: Exchange, name: str) -> str | None:
    """The request's header `name` (lower-case), values of repeated fields joined."""
    values = [value for key, value in exchange.head.forward if key == name]
    if not values:
        return None
    return values[0] if len(values) == 1 else ", ".join(values)
