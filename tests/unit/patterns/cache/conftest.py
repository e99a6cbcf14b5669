"""A fake clock and a memory backend on it, for the cache's unit tests."""

from __future__ import annotations

import pytest

from bookvault.patterns.cache import MemoryBackend
from bookvault.patterns.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend(clock: FakeClock) -> MemoryBackend:
    return MemoryBackend(clock=clock)
