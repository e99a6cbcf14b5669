"""The route table: which public path prefix goes to which service.

Only the three public API prefixes are ever forwarded, with the prefix kept, so
a service's own `/internal/**`, `/healthz` or `/metrics` can never be reached
through the gateway.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from bookvault.config import SERVICE_NAMES, Settings

__all__ = ["Route", "RouteTable", "has_dot_segment"]


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    service: str
    prefix: str  # e.g. "/api/catalog/v1", no trailing slash
    origin: str  # e.g. "http://127.0.0.1:8081"
    anonymous_reads: bool  # GET/HEAD allowed without a token


class RouteTable:
    """Matches a request path to its route with one dict lookup.

    Every public prefix has the shape `/api/{service}/v1`, so the third path
    segment names the candidate route; no scan over the table is needed.
    """

    __slots__ = ("_by_segment", "routes")

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = tuple(routes)
        self._by_segment: dict[str, Route] = {}
        for route in self.routes:
            parts = route.prefix.split("/")
            if len(parts) != 4 or parts[0] or parts[1] != "api" or not parts[2] or not parts[3]:
                raise ValueError(
                    f"route prefix must look like /api/<service>/<version>, got {route.prefix!r}"
                )
            self._by_segment[parts[2]] = route

    @classmethod
    def from_settings(cls, settings: Settings) -> RouteTable:
        return cls(
            Route(
                service=name,
                prefix=f"/api/{name}/v1",
                origin=settings.service_url(name),
                anonymous_reads=name == "catalog",
            )
            for name in SERVICE_NAMES
        )

    def match(self, path: str) -> Route | None:
        """The route for `path` (the decoded ASGI path), or None."""
        if not path.startswith("/api/"):
            return None
        service, _, _ = path[5:].partition("/")
        route = self._by_segment.get(service)
        if route is None:
            return None
        prefix = route.prefix
        if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
            return route
        return None


def has_dot_segment(path: str) -> bool:
    """True when `path` holds a `.` or `..` segment.

    Such paths are refused rather than forwarded: a client or library that
    normalises them upstream would turn `/api/catalog/v1/../../internal/x`
    into `/internal/x`, escaping the prefix the route was chosen by.
    """
    if "/." not in path:
        return False
    return any(segment in (".", "..") for segment in path.split("/"))
