"""TTL jitter and XFetch, as pure functions with a seeded random source."""

import math
import random

import pytest

from bookvault.patterns.cache import jittered_ttl, xfetch_due


def test_jitter_stays_within_its_bounds_and_spreads_over_them() -> None:
    rng = random.Random(7)
    samples = [jittered_ttl(100.0, 0.1, rng) for _ in range(10_000)]
    assert all(90.0 <= s <= 110.0 for s in samples)
    assert min(samples) < 90.5
    assert max(samples) > 109.5
    assert sum(samples) / len(samples) == pytest.approx(100.0, abs=0.5)


def test_no_jitter_means_the_exact_ttl() -> None:
    assert jittered_ttl(42.0, 0.0, random.Random(1)) == 42.0


def test_xfetch_recomputes_often_near_expiry_and_never_far_from_it() -> None:
    rng = random.Random(2015)
    expires_at, delta, beta = 1_000.0, 0.5, 1.0

    def rate(now: float) -> float:
        return sum(xfetch_due(now, expires_at, delta, beta, rng) for _ in range(20_000)) / 20_000

    # P(early) = exp(-(expiry - now) / (delta * beta)).
    assert rate(999.9) == pytest.approx(math.exp(-0.2), abs=0.02)
    assert rate(999.0) == pytest.approx(math.exp(-2.0), abs=0.02)
    assert rate(990.0) == 0.0
    assert rate(1_000.0) == 1.0


def test_xfetch_recomputes_earlier_for_slower_loads_and_larger_beta() -> None:
    rng = random.Random(3)

    def rate(delta: float, beta: float) -> float:
        return sum(xfetch_due(998.0, 1_000.0, delta, beta, rng) for _ in range(20_000)) / 20_000

    assert rate(0.1, 1.0) < rate(1.0, 1.0) < rate(1.0, 3.0)


def test_xfetch_without_a_measured_load_waits_for_expiry() -> None:
    rng = random.Random(4)
    assert not any(xfetch_due(999.999, 1_000.0, 0.0, 1.0, rng) for _ in range(1_000))
    assert xfetch_due(1_000.0, 1_000.0, 0.0, 1.0, rng)
