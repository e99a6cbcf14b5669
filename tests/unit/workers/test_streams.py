"""Reading a consumer group's lag from Redis's XINFO GROUPS answer."""

from __future__ import annotations

from bookvault.workers import group_lag


def test_lag_and_pending_of_the_named_group() -> None:
    info = [
        {"name": b"other", "consumers": 1, "pending": 9, "lag": 9},
        {"name": b"late-fees", "consumers": 2, "pending": 3, "lag": 40},
    ]
    assert group_lag(info, "late-fees") == (40, 3)


def test_an_unknown_lag_counts_as_none_behind_and_a_missing_group_as_unknown() -> None:
    assert group_lag([{"name": "late-fees", "pending": 0, "lag": None}], "late-fees") == (0, 0)
    assert group_lag([], "late-fees") is None
