"""The outbox benchmark's table: one row per run, blanks where a column does not apply."""

from __future__ import annotations

from bookvault.bench.outbox_bench import render


def test_rows_render_as_a_markdown_table() -> None:
    table = render(
        [
            {"scenario": "relay drain", "batch": 500, "events": 20_000, "events_s": 15011.2},
            {
                "scenario": "lag at 250 ev/s",
                "batch": 500,
                "events": 1_250,
                "events_s": 249.0,
                "p50_ms": 16.84,
                "p99_ms": 130.7,
                "max_ms": 150.0,
            },
            {"scenario": "payment tx alone", "events": 2_000, "events_s": 541.0, "tx_ms": 1.849},
        ]
    ).splitlines()
    assert table[0].startswith("| scenario | batch | events | events/s |")
    assert table[2] == "| relay drain | 500 | 20,000 | 15,011 | - | - | - | - |"
    assert table[3] == "| lag at 250 ev/s | 500 | 1,250 | 249 | - | 16.8 | 130.7 | 150.0 |"
    assert table[4] == "| payment tx alone | - | 2,000 | 541 | 1.85 | - | - | - |"
