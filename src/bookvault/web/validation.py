"""Turning untrusted input (path, query, body) into typed values, or a clear 400/422."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TypeVar

import msgspec
from starlette.requests import Request

from bookvault.web.problems import HTTPProblem

T = TypeVar("T")
MAX_ID = 2**63 - 1


def path_id(request: Request, name: str) -> int:
    """A positive 64-bit id from the path; anything else is a 400."""
    raw = request.path_params[name]
    return parse_id(raw, name)


def parse_id(raw: str, name: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not 0 < int(raw) <= MAX_ID:
        raise HTTPProblem(400, f"{name} must be a positive integer, got {raw[:40]!r}")
    return int(raw)


async def json_body(request: Request, schema: type[T]) -> T:
    """Decode and validate a JSON body: malformed → 400, wrong shape → 422."""
    body = await request.body()
    if not body:
        raise HTTPProblem(400, "a JSON body is required")
    content_type = request.headers.get("content-type", "application/json")
    if content_type.split(";")[0].strip().lower() not in ("application/json", ""):
        raise HTTPProblem(415, "send the body as application/json")
    try:
        return msgspec.json.decode(body, type=schema, strict=True)
    except msgspec.ValidationError as exc:
        raise HTTPProblem(422, f"invalid body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise HTTPProblem(400, f"malformed JSON: {exc}") from None


def query_int(query: Mapping[str, str], name: str, *, default: int, minimum: int, maximum: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.lstrip("-").isdigit() or len(raw) > 19:
        raise HTTPProblem(400, f"{name} must be an integer, got {raw[:40]!r}")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise HTTPProblem(400, f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def query_choice(query: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = query.get(name) or default
    if raw not in choices:
        raise HTTPProblem(400, f"{name} must be one of {', '.join(choices)}, got {raw[:40]!r}")
    return raw


def query_text(query: Mapping[str, str], name: str, *, max_length: int = 200) -> str | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > max_length:
        raise HTTPProblem(400, f"{name} must be at most {max_length} characters")
    # PostgreSQL text cannot hold NUL; refuse control characters here rather than fail in SQL.
    if any(ord(char) < 32 or ord(char) == 127 for char in raw):
        raise HTTPProblem(400, f"{name} must not contain control characters")
    return raw


def query_datetime(query: Mapping[str, str], name: str) -> datetime | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    # An unencoded "+02:00" in a query string arrives as " 02:00"; read it as meant.
    text = raw.replace(" ", "+") if " " in raw.strip() else raw.strip()
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPProblem(400, f"{name} must be an RFC 3339 timestamp, got {raw[:40]!r}") from None
    if value.tzinfo is None:
        raise HTTPProblem(400, f"{name} must carry a UTC offset, e.g. 2026-01-01T00:00:00Z")
    return value


def reject_unknown_query(query: Mapping[str, str], allowed: frozenset[str]) -> None:
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise HTTPProblem(400, f"unknown query parameter(s): {', '.join(unknown)}")
