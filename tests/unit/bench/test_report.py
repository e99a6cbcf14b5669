import dataclasses
from pathlib import Path

from bookvault.bench.phases import PHASES, switches_for
from bookvault.bench.report import PhaseRow, markdown_table, write_charts


def _row(phase: str, rps: float | None, built: bool = True) -> PhaseRow:
    return PhaseRow(
        phase=phase,
        title=phase,
        built=built,
        not_built=() if built else ("cache",),
        requests_per_s=rps,
        p50_ms=1.0 if rps else None,
        p99_ms=5.0 if rps else None,
        db_queries_per_s=100.0 if rps else None,
        bytes_per_response=300.0 if rps else None,
        cache_hit_ratio=0.9 if rps else None,
        claimed_throughput_gain="+30-50%",
        claimed_latency_change="-20-40%",
        percentiles_ms={"p50": 1.0, "p90": 2.0, "p99": 5.0, "p99.9": 8.0, "max": 12.0} if rps else {},
    )


def test_phases_are_cumulative() -> None:
    first, last = switches_for(0), switches_for(len(PHASES) - 1)
    assert not any(first.values())
    assert all(last.values())
    assert switches_for(1)["compression"]
    assert not switches_for(1)["cache"]


def test_table_shows_gains_and_marks_unbuilt_phases() -> None:
    table = markdown_table(
        [_row("baseline", 1000.0), _row("phase1", 1500.0), _row("phase2", None, built=False)]
    )
    lines = table.splitlines()
    assert "| baseline | 1,000 |" in lines[2]
    assert "+50%" in lines[3]
    assert "not built: cache" in lines[4]
    assert "| not built |" in lines[4]


def test_charts_are_png_files(tmp_path: Path) -> None:
    files = write_charts(tmp_path, [_row("baseline", 1000.0), _row("phase1", 1500.0)])
    assert [f.name for f in files] == ["ladder-phases.png", "ladder-latency.png"]
    for file in files:
        assert file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_shows_the_share_of_failed_answers() -> None:
    refusing = dataclasses.replace(_row("phase4", 9000.0), failed_share=0.65)
    table = markdown_table([_row("baseline", 1000.0), refusing])
    header, _, baseline, phase4 = table.splitlines()
    assert "| failed |" in header
    assert "| 65.0% |" in phase4
    assert "| — |" in baseline  # not measured: shown as unknown, never as 0%
