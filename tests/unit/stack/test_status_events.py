"""`bookvault status` lines for the event flow: backlog per outbox, lag per group."""

from __future__ import annotations

from bookvault.stack.status import render_events


def test_backlog_and_lag_are_one_line_each_and_what_is_down_says_so() -> None:
    lines = render_events(
        {
            "outbox": [
                {"service": "borrowing", "state": "up", "pending": 12, "oldest_s": 0.4},
                {"service": "accounts", "state": "down", "error": "connection refused"},
            ],
            "streams": [
                {"stream": "events:loans", "group": "late-fees", "state": "up", "lag": 30, "pending": 5},
                {"stream": "events:accounts", "group": "summaries", "state": "down", "error": "timeout"},
            ],
        }
    )
    assert lines == [
        "",
        "outbox borrowing: 12 unpublished, oldest 0.4 s",
        "outbox accounts: down connection refused",
        "stream events:loans group late-fees: lag 30 (5 delivered, not acked)",
        "stream events:accounts group summaries: down timeout",
    ]


def test_nothing_is_shown_when_nothing_was_probed() -> None:
    assert render_events({}) == []
