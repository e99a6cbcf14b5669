"""Named circuit breakers: one per downstream (or per key), made on first use.

breakers = BreakerRegistry(BreakerConfig(), overrides={"payments": BreakerConfig(failure_rate_threshold=25)})
catalog = breakers.get("catalog")
for metrics in breakers.metrics(): ...
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ..clock import Clock, SystemClock
from ._breaker import CircuitBreaker
from ._breaker_config import BreakerConfig
from ._breaker_events import BreakerListener, BreakerMetrics

__all__ = ["BreakerRegistry"]


class BreakerRegistry:
    __slots__ = ("_breakers", "_clock", "_listeners", "_overrides", "default")

    def __init__(
        self,
        default: BreakerConfig | None = None,
        *,
        overrides: Mapping[str, BreakerConfig] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.default = default if default is not None else BreakerConfig()
        self._overrides = dict(overrides or {})
        self._clock = clock if clock is not None else SystemClock()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._listeners: list[BreakerListener] = []

    def config_for(self, name: str) -> BreakerConfig:
        return self._overrides.get(name, self.default)

    def get(self, name: str) -> CircuitBreaker:
        """The breaker called `name`, made with its configuration on first use."""
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(name, self.config_for(name), clock=self._clock)
            for listener in self._listeners:
                breaker.add_listener(listener)
            self._breakers[name] = breaker
        return breaker

    def remove(self, name: str) -> None:
        """Forget a breaker, e.g. one keyed by a host that left the pool.

        Callers still holding it keep a working breaker that is no longer listed.
        """
        if self._breakers.pop(name, None) is None:
            raise KeyError(f"no circuit breaker named {name!r} in this registry")

    def add_listener(self, listener: BreakerListener) -> None:
        """Listen to every breaker, those made so far and those made later."""
        self._listeners.append(listener)
        for breaker in self._breakers.values():
            breaker.add_listener(listener)

    def metrics(self) -> list[BreakerMetrics]:
        return [breaker.metrics() for breaker in self._breakers.values()]

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def __iter__(self) -> Iterator[CircuitBreaker]:
        # A snapshot, so a breaker made while iterating does not break the loop.
        return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)
