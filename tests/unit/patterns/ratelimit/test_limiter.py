import asyncio

import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.patterns.ratelimit import (
    Algorithm,
    Decision,
    FixedWindow,
    InvalidCost,
    MemoryBackend,
    OnFailure,
    RateLimiter,
    RatePolicy,
    StorageError,
    StorageTimeout,
    TokenBucket,
    rate_limit_headers,
)


class BrokenStore:
    """Shared storage that is down: every call fails, and is counted."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = True
        self.answer: Decision | None = None

    async def take(self, key: str, cost: int) -> Decision:
        self.calls += 1
        if self.fail or self.answer is None:
            raise StorageError("connection refused")
        return self.answer


class BrokenBackend:
    def __init__(self) -> None:
        self.store = BrokenStore()

    def bind(self, policy: RatePolicy, algorithm: Algorithm, *, degraded: bool = False) -> BrokenStore:
        return self.store


class HangingBackend:
    """Shared storage that accepts the call and never answers."""

    def bind(self, policy: RatePolicy, algorithm: Algorithm, *, degraded: bool = False) -> "HangingBackend":
        return self

    async def take(self, key: str, cost: int) -> Decision:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


BUCKET = TokenBucket(replenish_rate=100, burst_capacity=200)


async def test_fallback_limits_locally_with_the_same_algorithm(clock: FakeClock) -> None:
    backend = BrokenBackend()
    limiter = RateLimiter("member", BUCKET, backend, fallback=MemoryBackend(clock=clock), cooldown=0)
    decisions = [await limiter.acquire("member:1") for _ in range(1000)]
    assert sum(d.allowed for d in decisions) == 200
    assert all(d.degraded for d in decisions)
    assert backend.store.calls == 1000
    assert limiter.stats.snapshot() == {
        "allowed": 200,
        "denied": 800,
        "would_deny": 0,
        "errors": 1000,
        "timeouts": 0,
        "failures": 1000,
        "degraded": 1000,
    }
    assert isinstance(limiter.last_error, StorageError)
    clock.advance(0.5)
    assert sum([(await limiter.acquire("member:1")).allowed for _ in range(100)]) == 50


async def test_fallback_can_use_a_per_process_share(clock: FakeClock) -> None:
    share = TokenBucket(replenish_rate=25, burst_capacity=50)  # a quarter, for four processes
    limiter = RateLimiter(
        "member", BUCKET, BrokenBackend(), fallback=MemoryBackend(clock=clock), fallback_algorithm=share
    )
    decisions = [await limiter.acquire("member:1") for _ in range(1000)]
    assert sum(d.allowed for d in decisions) == 50
    assert decisions[0].policy.quota == 50
    assert decisions[0].policy.name == "member"


async def test_fail_open_unlimited_lets_everything_through() -> None:
    limiter = RateLimiter("member", BUCKET, BrokenBackend(), on_failure=OnFailure.ALLOW, cooldown=0)
    decisions = [await limiter.acquire("member:1") for _ in range(1000)]
    assert all(d.allowed and d.degraded for d in decisions)
    assert decisions[0].remaining == 200
    assert limiter.stats.errors == 1000


async def test_fail_closed_refuses_with_a_retry_after() -> None:
    limiter = RateLimiter(
        "payments", BUCKET, BrokenBackend(), on_failure=OnFailure.DENY, deny_retry_after=2.0, cooldown=0
    )
    decision = await limiter.acquire("member:1")
    assert (decision.allowed, decision.degraded, decision.retry_after) == (False, True, 2.0)
    assert ("Retry-After", "2") in rate_limit_headers(decision)
    assert (limiter.stats.denied, limiter.stats.errors) == (1, 1)


async def test_a_storage_that_never_answers_times_out() -> None:
    limiter = RateLimiter("payments", BUCKET, HangingBackend(), timeout=0.001, on_failure=OnFailure.DENY)
    decision = await limiter.acquire("member:1")
    assert not decision.allowed
    assert decision.degraded
    assert (limiter.stats.timeouts, limiter.stats.errors, limiter.stats.failures) == (1, 0, 1)
    assert isinstance(limiter.last_error, StorageTimeout)


async def test_after_a_failure_storage_rests_for_the_cooldown(clock: FakeClock) -> None:
    backend = BrokenBackend()
    limiter = RateLimiter("member", BUCKET, backend, on_failure=OnFailure.ALLOW, cooldown=1.0, clock=clock)
    for _ in range(10):
        assert (await limiter.acquire("member:1")).degraded
    assert backend.store.calls == 1  # one failure, then no calls until the cooldown ends
    assert (limiter.stats.errors, limiter.stats.degraded) == (1, 10)

    backend.store.fail = False
    backend.store.answer = Decision(True, 200, 199, 0.01, 0.0, limiter.policy)
    clock.advance(0.999)
    assert (await limiter.acquire("member:1")).degraded
    clock.advance(0.001)
    recovered = await limiter.acquire("member:1")
    assert not recovered.degraded
    assert backend.store.calls == 2
    assert not (await limiter.acquire("member:1")).degraded
    assert backend.store.calls == 3


async def test_shadow_mode_counts_but_never_refuses(clock: FakeClock) -> None:
    limiter = RateLimiter("member", BUCKET, MemoryBackend(clock=clock), shadow=True)
    decisions = [await limiter.acquire("member:1") for _ in range(1000)]
    assert all(d.allowed for d in decisions)
    assert sum(d.would_deny for d in decisions) == 800
    shadowed = decisions[-1]
    assert (shadowed.remaining, shadowed.retry_after) == (0, 0.0)
    assert "Retry-After" not in dict(rate_limit_headers(shadowed))
    assert limiter.stats.snapshot()["would_deny"] == 800
    assert (limiter.stats.allowed, limiter.stats.denied) == (1000, 0)


async def test_shadow_mode_also_overrides_fail_closed() -> None:
    limiter = RateLimiter("payments", BUCKET, BrokenBackend(), on_failure=OnFailure.DENY, shadow=True)
    decision = await limiter.acquire("member:1")
    assert (decision.allowed, decision.would_deny, decision.degraded) == (True, True, True)


@pytest.mark.parametrize("cost", [0, -1, 201])
async def test_a_cost_that_could_never_pass_is_an_error(cost: int) -> None:
    limiter = RateLimiter("member", BUCKET)
    with pytest.raises(InvalidCost, match="between 1 and 200"):
        await limiter.acquire("member:1", cost)


async def test_the_default_backend_is_process_memory() -> None:
    limiter = RateLimiter("member", FixedWindow(limit=3, window=60))
    assert [(await limiter.acquire("k")).allowed for _ in range(4)] == [True, True, True, False]
    assert limiter.stats.failures == 0


def test_policy_name_must_be_safe_in_keys_and_headers() -> None:
    with pytest.raises(ValueError, match="policy name"):
        RateLimiter("per{member}", BUCKET)
    with pytest.raises(ValueError, match="policy name"):
        RateLimiter("a:b", BUCKET)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": 0}, "timeout must be positive"),
        ({"cooldown": -1}, "cooldown must be zero or positive"),
        ({"deny_retry_after": 0}, "deny_retry_after must be positive"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RateLimiter("member", BUCKET, **kwargs)  # type: ignore[arg-type]
