"""What a fault proxy can do to a connection. Each toxic is a small frozen
value; the proxy reads the current set for every new connection and chunk."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class Latency:
    """Delay each chunk from the upstream by `ms` (± `jitter_ms`)."""

    ms: float
    jitter_ms: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class ResetPeer:
    """Accept the connection, then reset it (RST) after `after_ms`."""

    after_ms: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class Timeout:
    """Accept the connection and swallow everything: no byte ever comes back."""


@dataclasses.dataclass(frozen=True, slots=True)
class Outage:
    """Refuse new connections and cut existing ones: the dependency is down."""


@dataclasses.dataclass(frozen=True, slots=True)
class HttpErrors:
    """Answer a share of HTTP/1.1 requests with `status` instead of forwarding
    them (decided per request, from a seeded random for reproducible runs)."""

    share: float
    status: int = 503
    retry_after_s: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError("HttpErrors.share must be between 0 and 1")


Toxic = Latency | ResetPeer | Timeout | Outage | HttpErrors
