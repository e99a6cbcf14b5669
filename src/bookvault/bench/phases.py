"""The seed's phased plan, as switches to turn on and the gains it claims.

Phases are cumulative: each one keeps the patterns of the phases before it.
The order follows PERFORMANCE.md; the seed lists request coalescing under
phase 4, we measure it with the caches in phase 2 where it belongs.
"""

from __future__ import annotations

import dataclasses

__all__ = ["ALONE", "PHASES", "SEED_OVERALL_CLAIMS", "Phase"]


@dataclasses.dataclass(frozen=True, slots=True)
class Phase:
    name: str
    title: str
    adds: tuple[str, ...]
    claimed_throughput_gain: str
    claimed_latency_change: str


PHASES: tuple[Phase, ...] = (
    Phase("baseline", "Baseline (every pattern off)", (), "—", "—"),
    Phase(
        "phase1",
        "Phase 1: compression, pool sizing, gateway cache",
        ("compression", "tuned_pools", "gateway_cache"),
        "+30-50%",
        "-20-40%",
    ),
    Phase("phase2", "Phase 2: service caches, coalescing", ("cache", "coalescing"), "+40-60%", "-50-80 ms"),
    Phase(
        "phase3",
        "Phase 3: breakers, retries, bulkheads",
        ("breakers", "retries", "bulkheads"),
        "stability +80-95%",
        "—",
    ),
    # With `replicas` on, catalog reads are routed to the streaming replica when it has
    # replayed what the read must see; the ladder reports the split it measured
    # (`catalog_reads_by_server`) next to earlier phases, where the primary serves all.
    Phase(
        "phase4",
        "Phase 4: replicas, rate limiting, materialized views",
        ("replicas", "rate_limit", "materialized_views"),
        "+100-200% scalability",
        "-30-50%",
    ),
)

SEED_OVERALL_CLAIMS = {
    "after phase 2": "1500 -> 2500-3100 req/s; 80-120 ms -> 32-72 ms",
    "after phase 4": "1500 -> 3750-5250 req/s; 80-120 ms -> 16-48 ms",
}


def switches_for(phase_index: int) -> dict[str, bool]:
    """Every pattern switch for a phase: on when it or an earlier phase adds it."""
    on = {name for phase in PHASES[: phase_index + 1] for name in phase.adds}
    every = {name for phase in PHASES for name in phase.adds}
    return {name: name in on for name in sorted(every)}


# Each group of patterns on its own over the baseline (`bookvault bench --ladder
# --alone`): the cumulative ladder shows what a phase adds to the ones before it,
# this shows what each pays on its own, so a pattern that only helps (or only
# costs) in company is visible. `materialized_views` is left out: read-heavy
# does not read genre statistics. The baseline is measured again first, under the
# same conditions as the rows after it (the ladder's own baseline runs first of all,
# on cold database buffers).
ALONE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("none (baseline, measured again)", ()),
    ("gateway response cache", ("gateway_cache",)),
    ("compression", ("compression",)),
    ("tuned pools", ("tuned_pools",)),
    ("service caches + coalescing", ("cache", "coalescing")),
    ("breakers, retries, bulkheads", ("breakers", "retries", "bulkheads")),
    ("read replicas", ("replicas",)),
    ("rate limiting", ("rate_limit",)),
)
