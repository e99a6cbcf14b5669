"""In-process storage: exact, lock-free under asyncio, private to one process.

Used on its own (one process, tests) and as the local fallback when the shared
storage fails. Each bound policy keeps at most `max_keys` keys; past that the
least recently used key is dropped. A dropped key starts again with a full
quota, so size `max_keys` above the number of clients active within one window.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from bookvault.patterns.clock import Clock, SystemClock
from bookvault.patterns.ratelimit.algorithm import Algorithm, LocalState
from bookvault.patterns.ratelimit.decision import Decision, RatePolicy

__all__ = ["MemoryBackend", "MemoryStore"]


class MemoryBackend:
    __slots__ = ("clock", "max_keys")

    def __init__(self, *, clock: Clock | None = None, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.max_keys = max_keys

    def bind(self, policy: RatePolicy, algorithm: Algorithm, *, degraded: bool = False) -> MemoryStore:
        return MemoryStore(policy, algorithm, self.clock, self.max_keys, degraded=degraded)


class MemoryStore:
    __slots__ = ("_degraded", "_limit", "_max_keys", "_new_state", "_now", "_policy", "_states", "evictions")

    def __init__(
        self, policy: RatePolicy, algorithm: Algorithm, clock: Clock, max_keys: int, *, degraded: bool = False
    ) -> None:
        self._policy = policy
        self._limit = policy.quota
        self._new_state: Callable[[], LocalState] = algorithm.new_state
        # Monotonic: a wall clock stepped by NTP must not refill or drain anyone.
        self._now = clock.monotonic
        self._max_keys = max_keys
        self._degraded = degraded
        self._states: OrderedDict[str, LocalState] = OrderedDict()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._states)

    def take_now(self, key: str, cost: int) -> Decision:
        """`take` without the coroutine: memory never waits."""
        states = self._states
        state = states.get(key)
        if state is None:
            state = states[key] = self._new_state()
            if len(states) > self._max_keys:
                states.popitem(last=False)
                self.evictions += 1
        else:
            states.move_to_end(key)
        allowed, remaining, reset_after, retry_after = state.take(self._now(), cost)
        return Decision(
            allowed, self._limit, remaining, reset_after, retry_after, self._policy, False, self._degraded
        )

    async def take(self, key: str, cost: int) -> Decision:
        return self.take_now(key, cost)

    def clear(self) -> None:
        self._states.clear()
