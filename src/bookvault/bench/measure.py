"""One measurement of a scenario against a running target: closed-loop for the
most it can serve, then open-loop at a share of that for honest latency."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from urllib.parse import urlsplit

from bookvault.bench.loadgen import LoadResult, LoadSpec, RequestSource, run_in_process

__all__ = ["Measurement", "measure"]


@dataclasses.dataclass(frozen=True, slots=True)
class Measurement:
    """Throughput from the closed-loop run, latency from the open-loop run."""

    requests_per_s: float
    open_loop_rate: float
    percentiles_ms: dict[str, float]
    statuses: dict[int, int]
    errors: dict[str, int]
    bytes_per_response: float
    generator_cpu_share: float

    def as_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"expected http://host:port, got {url!r}")
    return parts.hostname, parts.port


def measure(
    url: str,
    source_factory: Callable[[], RequestSource],
    *,
    duration_s: float,
    connections: int,
    open_loop_share: float = 0.7,
    warmup_s: float = 1.0,
) -> Measurement:
    """Closed loop at `connections` to find the throughput, then open loop at
    `open_loop_share` of it, where latency is measured from intended send times."""
    host, port = _host_port(url)
    closed: LoadResult = run_in_process(
        LoadSpec(host, port, "closed", duration_s, connections, warmup_s=warmup_s), source_factory
    )
    rate = max(1.0, closed.throughput * open_loop_share)
    opened: LoadResult = run_in_process(
        LoadSpec(host, port, "open", duration_s, connections, rate=rate), source_factory
    )
    statuses: dict[int, int] = dict(closed.statuses)
    for code, count in opened.statuses.items():
        statuses[code] = statuses.get(code, 0) + count
    errors: dict[str, int] = dict(closed.errors)
    for kind, count in opened.errors.items():
        errors[kind] = errors.get(kind, 0) + count
    return Measurement(
        requests_per_s=closed.throughput,
        open_loop_rate=rate,
        percentiles_ms=opened.percentiles_ms(),
        statuses=statuses,
        errors=errors,
        bytes_per_response=closed.bytes_per_response,
        generator_cpu_share=max(closed.cpu_share, opened.cpu_share),
    )
