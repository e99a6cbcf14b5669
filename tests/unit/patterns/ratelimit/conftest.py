from collections.abc import Awaitable, Callable

import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.patterns.ratelimit import Algorithm, MemoryBackend, RateLimiter


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_limiter(clock: FakeClock) -> Callable[[Algorithm], RateLimiter]:
    """A memory-backed limiter whose time moves only with `clock.advance`."""

    def make(algorithm: Algorithm) -> RateLimiter:
        return RateLimiter("test", algorithm, MemoryBackend(clock=clock))

    return make


@pytest.fixture
def burst() -> Callable[..., Awaitable[int]]:
    """`await burst(limiter, n, cost=None)`: send n requests for one key at this
    instant and return how many passed."""

    async def send(limiter: RateLimiter, n: int, cost: int | None = None) -> int:
        return sum([(await limiter.acquire("member:1", cost)).allowed for _ in range(n)])

    return send
