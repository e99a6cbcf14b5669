"""The pool, replica and read-model settings refuse values that cannot work."""

from __future__ import annotations

import os

import pytest

from bookvault.config import ConfigError, load_settings
from bookvault.db.replicas import policy_from


def _load(**environ: str) -> object:
    return load_settings({"BOOKVAULT_CONFIG": os.devnull, **environ})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"BOOKVAULT_POOL_ACQUIRE_TIMEOUT_S": "0"}, "must be positive"),
        ({"BOOKVAULT_POOL_LEAK_DETECTION_S": "-1"}, "cannot be negative"),
        ({"BOOKVAULT_REPLICA_MAX_LAG_BYTES": "-1"}, "cannot be negative"),
        ({"BOOKVAULT_REPLICA_POLL_INTERVAL_S": "0"}, "must be positive"),
        # A position forgotten before a lagging replica leaves the rotation would
        # send the writer to the replica's older state.
        ({"BOOKVAULT_WRITE_POSITION_TTL_S": "5", "BOOKVAULT_REPLICA_MAX_LAG_SECONDS": "5"}, "must exceed"),
        ({"BOOKVAULT_STATS_REFRESH_QUIET_S": "20"}, "STATS_REFRESH_QUIET_S"),
    ],
)
def test_unworkable_values_are_refused_with_the_setting_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(**environ)


def test_the_replica_policy_follows_the_settings() -> None:
    settings = load_settings(
        {
            "BOOKVAULT_CONFIG": os.devnull,
            "BOOKVAULT_REPLICA_MAX_LAG_BYTES": "1024",
            "BOOKVAULT_REPLICA_MAX_LAG_SECONDS": "2.5",
            "BOOKVAULT_REPLICA_POLL_INTERVAL_S": "0.5",
        }
    )
    policy = policy_from(settings)
    assert (policy.max_lag_bytes, policy.max_lag_seconds, policy.poll_interval_s) == (1024, 2.5, 0.5)


def test_both_read_side_switches_follow_the_profile() -> None:
    optimized = load_settings({"BOOKVAULT_CONFIG": os.devnull, "BOOKVAULT_PROFILE": "optimized"})
    assert optimized.pattern_states()["replicas"] == "on"
    assert optimized.pattern_states()["materialized_views"] == "on"
    baseline = load_settings({"BOOKVAULT_CONFIG": os.devnull})
    assert baseline.pattern_states()["replicas"] == "off"
