"""`bookvault bench --ladder --quick` runs unattended and writes its report.

A smoke test of the bench itself: it asserts what the bench produced, never
how fast anything was (speed is reported in BENCHMARKS.md, not asserted).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bookvault.bench.phases import PHASES
from bookvault.config import BUILT_PATTERNS

pytestmark = pytest.mark.e2e


@pytest.fixture
def bench_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: that is private to the current user, and as root the
    # bench's PostgreSQL runs as user `postgres`, which must reach its state dir.
    directory = Path(tempfile.mkdtemp(prefix="bookvault-bench-test-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


# It brings up a whole stack per phase, five times: well over the suite's default
# per-test bound on a busy machine, yet still bounded.
@pytest.mark.timeout(480)
def test_quick_ladder_writes_results_table_and_charts(bench_dir: Path) -> None:
    tmp_path = bench_dir
    output = tmp_path / "results"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bookvault",
            "bench",
            "--ladder",
            "--quick",
            "--duration",
            "1",
            "--output",
            str(output),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "Baseline (every pattern off): starting the stack" in completed.stdout

    results = json.loads((output / "results.json").read_text())
    phases = {phase["phase"]: phase for phase in results["phases"]}
    assert list(phases) == [phase.name for phase in PHASES]
    baseline = phases["baseline"]
    assert baseline["built"] is True
    assert baseline["read_heavy"]["requests_per_s"] > 0
    assert set(baseline["read_heavy"]["percentiles_ms"]) == {"p50", "p90", "p99", "p99.9", "max"}
    assert baseline["payments"]["statuses"].get("201", 0) > 0
    for phase in PHASES[1:]:
        unbuilt = [name for name in phase.adds if name not in BUILT_PATTERNS]
        if len(unbuilt) == len(phase.adds):
            # Never measured as if it were built.
            assert phases[phase.name] == {"phase": phase.name, "built": False, "not_built": unbuilt}

    references = results["references"]
    assert references["raw_asgi"]["requests_per_s"] > 0
    assert references["conventional_book_detail"]["statuses"].get("200", 0) > 0

    table = (output / "ladder.md").read_text()
    assert "| Baseline (every pattern off) |" in table
    assert "bookvault bench --ladder --quick" in table
    for chart in ("ladder-phases.png", "ladder-latency.png"):
        assert (output / chart).read_bytes()[:4] == b"\x89PNG"
    # The bench stack is stopped afterwards: nothing listens on its gateway port.
    status = subprocess.run(
        [sys.executable, "-m", "bookvault", "status", "--json", "--state-dir", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(status.stdout)["running"] is False
