"""Compression: the Accept-Encoding negotiation table and what the stage does to replies."""

import gzip
import json

import brotli  # type: ignore[import-untyped]  # no stubs published
import pytest
import zstandard

from bookvault.gateway.body import RequestBody
from bookvault.gateway.compression import Compression, merge_vary, suffix_etag
from bookvault.gateway.exchange import Exchange, Reply
from bookvault.gateway.headers import read_request_headers
from bookvault.gateway.routing import Route
from bookvault.patterns.compression import negotiate

CATALOG = Route("catalog", "/api/catalog/v1", "http://127.0.0.1:1", anonymous_reads=True)
JSON = (b"content-type", b"application/json")
BIG = json.dumps({"items": [{"id": i, "title": f"Book number {i}", "genre": "fiction"} for i in range(100)]})
BIG_BODY = BIG.encode()


def make_exchange(method: str = "GET", headers: tuple[tuple[str, str], ...] = ()) -> Exchange:
    head = read_request_headers([(k.lower().encode(), v.encode()) for k, v in headers])

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    path = "/api/catalog/v1/books"
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b""}
    return Exchange(
        scope=scope,
        request_body=RequestBody(receive, head, "1.1"),
        method=method,
        path=path,
        route=CATALOG,
        head=head,
        request_id=b"req",
        client="192.0.2.1",
        forwarded_for="192.0.2.1",
        peer_trusted=False,
        principal=None,
    )


def decode(coding: str | None, body: bytes) -> bytes:
    if coding == "br":
        result: bytes = brotli.decompress(body)
        return result
    if coding == "zstd":
        return zstandard.ZstdDecompressor().decompress(body)
    if coding == "gzip":
        return gzip.decompress(body)
    return body


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, None),  # no header: the client said nothing; the body goes as is
        ("", None),  # an empty value: identity only
        ("gzip", "gzip"),
        ("x-gzip", "gzip"),
        ("GZIP", "gzip"),
        ("zstd", "zstd"),
        ("br", "br"),
        ("gzip, deflate, br, zstd", "br"),  # equal q: brotli first
        ("gzip, zstd", "zstd"),
        ("br;q=0.5, gzip", "gzip"),  # q-values beat server preference
        ("br;q=0.5, gzip;q=0.8, zstd;q=0.9", "zstd"),
        ("gzip;q=0", None),  # q=0: refused
        ("br;q=0, zstd;q=0, gzip;q=0", None),
        ("*", "br"),  # anything
        ("*;q=0", None),  # nothing encoded
        ("gzip;q=0, *", "br"),  # `*` covers the codings not named
        ("br;q=0, *;q=0.5", "zstd"),
        ("identity", None),
        ("identity, gzip;q=0.5", None),  # identity named and preferred
        ("identity;q=0.5, gzip", "gzip"),
        ("gzip;q=1, identity;q=1", "gzip"),  # a tie goes to the coding
        ("deflate", None),  # nothing we offer
        ("gzip;q=abc", None),  # a malformed q-value counts as refusal
        ("gzip;q=2", None),  # out of range: refused
        ("gzip ; q=0.3 , deflate", "gzip"),
    ],
)
def test_negotiation_table(accept: str | None, chosen: str | None) -> None:
    assert negotiate(accept) == chosen


async def run(reply: Reply, method: str = "GET", accept: str | None = "br") -> Reply:
    headers = (("accept-encoding", accept),) if accept is not None else ()

    async def upstream(exchange: Exchange) -> Reply:
        return reply

    return await Compression()(make_exchange(method, headers), upstream)


def header(reply: Reply, name: bytes) -> list[bytes]:
    return [value for key, value in reply.headers if key == name]


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip"])
async def test_big_json_is_encoded_and_decodes_to_the_same_bytes(coding: str) -> None:
    reply = await run(
        Reply(200, [JSON, (b"content-length", str(len(BIG_BODY)).encode())], BIG_BODY), accept=coding
    )
    assert header(reply, b"content-encoding") == [coding.encode()]
    assert header(reply, b"content-length") == [str(len(reply.body)).encode()]
    assert header(reply, b"vary") == [b"Accept-Encoding"]
    assert decode(coding, reply.body) == BIG_BODY
    assert len(reply.body) < len(BIG_BODY) * 0.4  # at least 60% fewer bytes on a list


async def test_small_bodies_pass_unchanged() -> None:
    body = b'{"id": 1}'
    reply = await run(Reply(200, [JSON], body))
    assert reply.body == body
    assert header(reply, b"content-encoding") == []


@pytest.mark.parametrize(
    "extra",
    [
        (b"content-encoding", b"gzip"),  # already encoded
        (b"cache-control", b"public, no-transform"),
        (b"content-range", b"bytes 0-10/100"),
    ],
)
async def test_never_touches_encoded_or_untransformable_bodies(extra: tuple[bytes, bytes]) -> None:
    reply = await run(Reply(200, [JSON, extra], BIG_BODY))
    assert reply.body == BIG_BODY
    assert header(reply, b"content-encoding") == ([extra[1]] if extra[0] == b"content-encoding" else [])


@pytest.mark.parametrize("status", [204, 304])
async def test_bodiless_statuses_pass(status: int) -> None:
    reply = await run(Reply(status, [JSON], b""))
    assert reply.headers == [JSON]


async def test_head_is_never_encoded() -> None:
    reply = await run(Reply(200, [JSON], BIG_BODY), method="HEAD")
    assert header(reply, b"content-encoding") == []


async def test_binary_media_types_are_left_alone() -> None:
    reply = await run(Reply(200, [(b"content-type", b"image/png")], BIG_BODY))
    assert reply.body == BIG_BODY
    assert header(reply, b"vary") == []


async def test_vary_is_added_even_when_this_client_gets_identity() -> None:
    reply = await run(Reply(200, [JSON], BIG_BODY), accept="identity")
    assert reply.body == BIG_BODY
    assert header(reply, b"vary") == [b"Accept-Encoding"]


async def test_vary_is_merged_with_an_existing_one() -> None:
    reply = await run(Reply(200, [JSON, (b"vary", b"Accept-Language")], BIG_BODY))
    assert header(reply, b"vary") == [b"Accept-Language, Accept-Encoding"]


def test_merge_vary_leaves_star_and_present_names() -> None:
    star = [(b"vary", b"*")]
    merge_vary(star, b"Accept-Encoding")
    assert star == [(b"vary", b"*")]
    present = [(b"vary", b"accept-encoding")]
    merge_vary(present, b"Accept-Encoding")
    assert present == [(b"vary", b"accept-encoding")]


async def test_strong_etag_differs_per_coding() -> None:
    etags = set()
    for coding in ("br", "zstd", "gzip", "identity"):
        reply = await run(Reply(200, [JSON, (b"etag", b'"v1"')], BIG_BODY), accept=coding)
        etags.update(header(reply, b"etag"))
    assert etags == {b'"v1-br"', b'"v1-zstd"', b'"v1-gzip"', b'"v1"'}
    assert suffix_etag(b'W/"v1"', "br") == b'W/"v1-br"'


async def test_encoding_is_deterministic_across_calls() -> None:
    first = await run(Reply(200, [JSON], BIG_BODY), accept="gzip")
    second = await run(Reply(200, [JSON], BIG_BODY), accept="gzip")
    assert first.body == second.body
