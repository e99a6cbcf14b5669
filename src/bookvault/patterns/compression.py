"""Content-coding negotiation (RFC 9110 §12.5.3) and the encoders behind it.

    choice = negotiate(request_accept_encoding)     # "br", "zstd", "gzip" or None
    body = encode(choice, body)

`negotiate` reads the q-values of `Accept-Encoding`: `q=0` refuses a coding, `*`
stands for every coding not named, and `identity` (the body as is) competes like any
other entry. Among equally preferred codings the order of `available` decides (by
default brotli, then zstd, then gzip: best ratio first). No header at all means the
client said nothing, and the body is sent as is; that is what browsers and HTTP
libraries that can decode always announce.

Encodings are deterministic (gzip without a timestamp), so one body encodes to the
same bytes in every process and a hash of the encoded bytes is a stable validator.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Sequence

import brotli  # type: ignore[import-untyped]  # no stubs published
import zstandard

__all__ = ["CODINGS", "accepted_codings", "encode", "negotiate"]

# Levels chosen for a body compressed once and then served many times from a cache,
# while still cheap enough for the miss path: JSON of a few KiB to a few tens of KiB.
_BROTLI_QUALITY = 5
_ZSTD_LEVEL = 6
_GZIP_LEVEL = 6

_zstd = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)


def _gzip(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)


def _brotli(body: bytes) -> bytes:
    result: bytes = brotli.compress(body, quality=_BROTLI_QUALITY)
    return result


def _zstandard(body: bytes) -> bytes:
    return _zstd.compress(body)


_ENCODERS: dict[str, Callable[[bytes], bytes]] = {"br": _brotli, "zstd": _zstandard, "gzip": _gzip}
# Server preference among equal q-values, best ratio first.
CODINGS: tuple[str, ...] = ("br", "zstd", "gzip")
_ALIASES = {"x-gzip": "gzip"}


def accepted_codings(header: str) -> dict[str, float]:
    """The q-value of each coding named in an `Accept-Encoding` value (lower-cased).

    A malformed q-value makes its entry count as refused (q=0) rather than guessed at.
    """
    weights: dict[str, float] = {}
    for item in header.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        coding = _ALIASES.get(coding, coding)
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:
                    q = 0.0
        # Named twice: the more favourable reading wins, as most servers do.
        weights[coding] = max(q, weights.get(coding, 0.0))
    return weights


def negotiate(header: str | None, available: Sequence[str] = CODINGS) -> str | None:
    """The coding to send for this `Accept-Encoding`, or None for the body as is."""
    if header is None:
        return None
    weights = accepted_codings(header)
    star = weights.get("*")
    best: str | None = None
    best_q = 0.0
    for coding in available:
        q = weights.get(coding, star if star is not None else 0.0)
        if q > best_q:
            best, best_q = coding, q
    if best is None:
        return None
    # identity competes when it is named (or covered by `*`); unnamed, it is the
    # fallback and loses to any coding the client accepts. On a tie, the coding wins.
    identity_q = weights.get("identity", star if star is not None else 0.0)
    return None if identity_q > best_q else best


def encode(coding: str, body: bytes) -> bytes:
    """`body` in `coding` (one of `CODINGS`)."""
    return _ENCODERS[coding](body)
