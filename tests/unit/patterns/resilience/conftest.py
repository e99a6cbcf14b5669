from collections.abc import Iterator

import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.patterns.resilience import set_testing


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _no_testing_mode_leaks() -> Iterator[None]:
    # Testing mode is process-wide; a test that turns it on must not change the next one.
    yield
    set_testing(False)
