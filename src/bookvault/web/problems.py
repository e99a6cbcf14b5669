"""RFC 9457 problem details: the one error shape every endpoint returns."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

import msgspec
from starlette.responses import Response

PROBLEM_CONTENT_TYPE = "application/problem+json"
_encoder = msgspec.json.Encoder()


class HTTPProblem(Exception):
    """Raise from a handler to answer with a problem+json response."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        type_: str = "about:blank",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.type = type_
        self.headers = dict(headers or {})


def problem_body(status: int, detail: str, title: str | None = None, type_: str = "about:blank") -> bytes:
    return _encoder.encode(
        {"type": type_, "title": title or HTTPStatus(status).phrase, "status": status, "detail": detail}
    )


def problem_response(problem: HTTPProblem) -> Response:
    return Response(
        problem_body(problem.status, problem.detail, problem.title, problem.type),
        status_code=problem.status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=problem.headers,
    )
