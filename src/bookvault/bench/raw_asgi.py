"""The raw-ASGI ceiling: the least a Python ASGI server can do per request,
returning the same book-sized JSON body the catalog serves."""

from __future__ import annotations

from typing import Any

from bookvault.bench.sample import BOOK_BODY

_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BOOK_BODY)).encode())]
_START = {"type": "http.response.start", "status": 200, "headers": _HEADERS}
_BODY = {"type": "http.response.body", "body": BOOK_BODY}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(_START)
    await send(_BODY)
