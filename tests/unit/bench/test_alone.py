"""The `--alone` rows: each pattern group measured on its own over the baseline."""

from __future__ import annotations

from typing import Any

from bookvault.bench.ladder import _alone_lines
from bookvault.bench.phases import ALONE, PHASES
from bookvault.config import PATTERN_SWITCHES


def _heavy(rps: float) -> dict[str, Any]:
    return {"requests_per_s": rps, "percentiles_ms": {"p50": 1.0, "p99": 4.0}}


def test_every_group_names_real_switches_that_some_phase_adds() -> None:
    in_phases = {name for phase in PHASES for name in phase.adds}
    for _, names in ALONE:
        assert set(names) <= set(PATTERN_SWITCHES) & in_phases


def test_the_baseline_is_measured_again_first_and_every_group_is_compared_with_it() -> None:
    assert ALONE[0][1] == ()
    results = {
        "phases": [{"phase": "baseline", "built": True, "read_heavy": _heavy(900.0)}],
        "alone": [
            {
                "label": "none",
                "patterns": [],
                "read_heavy": _heavy(2000.0),
                "catalog_db_queries_per_s": 4000.0,
            },
            {
                "label": "gateway response cache",
                "patterns": ["gateway_cache"],
                "read_heavy": _heavy(6000.0),
                "catalog_db_queries_per_s": 50.0,
            },
            {
                "label": "rate limiting",
                "patterns": ["rate_limit"],
                "read_heavy": _heavy(1500.0),
                "catalog_db_queries_per_s": None,
            },
        ],
    }
    lines = _alone_lines(results)
    assert lines[0] == "### Each group alone over the baseline (read-heavy)"
    rows = [line for line in lines if line.startswith("| ") and "---" not in line][1:]
    assert rows[0].startswith("| none | 2,000 | 1.00x |")
    assert rows[1].startswith("| gateway response cache | 6,000 | 3.00x |")
    assert rows[2].startswith("| rate limiting | 1,500 | 0.75x |")
    assert rows[2].endswith("| — |")


def test_without_alone_runs_there_is_no_table() -> None:
    assert _alone_lines({"phases": [{"phase": "baseline", "built": True, "read_heavy": _heavy(1.0)}]}) == []
