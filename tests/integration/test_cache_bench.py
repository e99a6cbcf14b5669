"""The cache micro-benchmark runs end to end on its own throwaway Redis and reports
every contender; the numbers themselves belong in BENCHMARKS.md, not in a test."""

from __future__ import annotations

import pytest

from bookvault.bench.cache_bench import CONTENDERS, main


# The peers call redis-py methods it deprecates (cashews `close()`, aiocache `setex`);
# our own code runs under warnings-as-errors everywhere else.
@pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")
def test_every_contender_is_measured_and_l1_hits_never_reach_redis(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--hits", "50", "--keys", "20", "--concurrency", "4", "--rounds", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| L")]
    assert len(rows) == len(CONTENDERS)
    for row in rows:
        tier, library, trips = (
            row.split("|")[1].strip(),
            row.split("|")[2].strip(),
            row.split("|")[-2].strip(),
        )
        assert trips == ("0.00" if tier == "L1" else "1.00"), (library, row)
