import pytest

from bookvault.stack.backoff import RestartBackoff


def test_delays_double_up_to_the_cap() -> None:
    backoff = RestartBackoff(initial_s=0.5, factor=2.0, max_s=4.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


@pytest.mark.parametrize(("previous", "ran_for_s", "expected"), [(0, 1.0, 1), (3, 1.0, 4), (5, 30.0, 1)])
def test_a_long_run_resets_the_crash_count(previous: int, ran_for_s: float, expected: int) -> None:
    assert RestartBackoff(stable_after_s=30.0).crashes_after(previous, ran_for_s) == expected
