"""Writing what a ladder run measured: results.json, a Markdown table and PNG charts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

__all__ = ["PhaseRow", "markdown_table", "write_charts", "write_results"]


@dataclasses.dataclass(frozen=True, slots=True)
class PhaseRow:
    """One phase's read-heavy measurement and the seed's claim for it."""

    phase: str
    title: str
    built: bool
    not_built: tuple[str, ...]
    requests_per_s: float | None
    p50_ms: float | None
    p99_ms: float | None
    db_queries_per_s: float | None
    bytes_per_response: float | None
    cache_hit_ratio: float | None
    claimed_throughput_gain: str
    claimed_latency_change: str
    percentiles_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    # Answers that were not a success (4xx, 5xx, transport errors): a phase must not
    # look fast by refusing.
    failed_share: float | None = None


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def _gain(current: float | None, previous: float | None) -> str:
    if current is None or previous is None or previous == 0:
        return "—"
    return f"{(current / previous - 1) * 100:+.0f}%"


def markdown_table(rows: list[PhaseRow]) -> str:
    header = (
        "| Phase | req/s | p50 ms | p99 ms | DB queries/s | bytes/resp | cache hit | failed | "
        "measured gain vs previous | seed's claimed gain |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    previous: float | None = None
    for row in rows:
        title = row.title if row.built else f"{row.title} — not built: {', '.join(row.not_built)}"
        if not row.built and row.requests_per_s is None:
            lines.append(f"| {title} | not built | | | | | | | | {row.claimed_throughput_gain} |")
            continue
        lines.append(
            f"| {title} | {_fmt(row.requests_per_s, ',.0f')} | {_fmt(row.p50_ms, '.2f')} | "
            f"{_fmt(row.p99_ms, '.2f')} | {_fmt(row.db_queries_per_s, ',.0f')} | "
            f"{_fmt(row.bytes_per_response, ',.0f')} | {_fmt(row.cache_hit_ratio, '.0%')} | "
            f"{_fmt(row.failed_share, '.1%')} | {_gain(row.requests_per_s, previous)} | "
            f"{row.claimed_throughput_gain}, "
            f"latency {row.claimed_latency_change} |"
        )
        previous = row.requests_per_s if row.requests_per_s is not None else previous
    return header + "\n".join(lines) + "\n"


def write_results(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def write_charts(directory: Path, rows: list[PhaseRow]) -> list[Path]:
    """req/s and p99 per phase, and latency percentile curves; returns the files."""
    import matplotlib

    matplotlib.use("Agg")  # no display here; render straight to PNG
    from matplotlib import pyplot as plt

    measured = [r for r in rows if r.requests_per_s is not None]
    written: list[Path] = []
    if not measured:
        return written
    names = [r.phase for r in measured]

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.bar(names, [r.requests_per_s or 0 for r in measured], color="#3b7dd8")
    left.set_title("read-heavy throughput (req/s)")
    right.bar(names, [r.p99_ms or 0 for r in measured], color="#d8733b")
    right.set_title("read-heavy p99 latency (ms)")
    figure.tight_layout()
    per_phase = directory / "ladder-phases.png"
    figure.savefig(per_phase, dpi=110)
    plt.close(figure)
    written.append(per_phase)

    figure, axis = plt.subplots(figsize=(7, 4))
    order = ["p50", "p90", "p99", "p99.9", "max"]
    for row in measured:
        if all(p in row.percentiles_ms for p in order):
            axis.plot(order, [row.percentiles_ms[p] for p in order], marker="o", label=row.phase)
    axis.set_yscale("log")
    axis.set_ylabel("latency (ms, log)")
    axis.set_title("read-heavy latency percentiles (open loop)")
    axis.legend()
    figure.tight_layout()
    curves = directory / "ladder-latency.png"
    figure.savefig(curves, dpi=110)
    plt.close(figure)
    written.append(curves)
    return written
