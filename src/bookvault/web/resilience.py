"""The resilience of one process's outgoing calls: a `Policy` per dependency, built
from the `breakers`, `retries` and `bulkheads` switches, and their state on `/metrics`.

    guards = Guards(settings, "borrowing")
    catalog = guards.policy("catalog", retry_on=CatalogUnavailable, bulkhead_calls=20, ...)
    registry.register(guards.collector())

Each switch is honoured on its own: a switched-off layer is simply absent from the
policy. What stays in every profile is the deadline: an attempt never outlives the
caller's deadline (`use_deadline`), switches or not.

Metrics (one series per dependency, label `dependency`):

    bookvault_breaker_state{dependency,state}          1 for the current state, else 0
    bookvault_breaker_failure_rate / _slow_call_rate   percent of the window; -1 below the minimum calls
    bookvault_breaker_buffered_calls / _failed_calls / _slow_calls
    bookvault_breaker_not_permitted_calls_total        calls refused by the breaker
    bookvault_bulkhead_in_flight / _queued / _max_concurrent_calls
    bookvault_bulkhead_rejected_calls_total
    bookvault_retry_attempts_total{dependency,outcome} retried, or gave up (outcome = reason)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from bookvault.config import Settings
from bookvault.patterns.resilience import (
    BreakerConfig,
    BreakerState,
    Bulkhead,
    BulkheadConfig,
    CircuitBreaker,
    ExceptionFilter,
    Policy,
    Retry,
    RetryBudget,
    RetryConfig,
    RetryGaveUp,
    RetryScheduled,
)

__all__ = ["RETRY_BUDGET_RATIO", "Guards", "ResilienceCollector"]

# The target is "upstream attempts <= 1.2 x requests". A budget of exactly 20% sits on
# that line (its floor of 3 retries a second and integer rounding push a busy minute
# a hair over it), so each dependency gets 15%: the ceiling holds with a margin.
RETRY_BUDGET_RATIO = 0.15


@dataclasses.dataclass(slots=True)
class _Dependency:
    policy: Policy
    retries: dict[str, int] = dataclasses.field(default_factory=dict)


class Guards:
    """The policies of one process, one per dependency, made on first request."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.breakers_on = settings.pattern_on("breakers")
        self.retries_on = settings.pattern_on("retries")
        self.bulkheads_on = settings.pattern_on("bulkheads")
        self._dependencies: dict[str, _Dependency] = {}

    def policy(
        self,
        name: str,
        *,
        failure: ExceptionFilter,
        failure_result: Callable[[Any], bool] | None = None,
        retry_on: ExceptionFilter,
        retry_on_result: Callable[[Any], bool] | None = None,
        retry_initial_wait_s: float = 1.0,
        bulkhead_calls: int,
        attempt_timeout_s: float | None,
    ) -> Policy:
        """The policy guarding calls to `name` (the same one on every call for a name)."""
        known = self._dependencies.get(name)
        if known is not None:
            return known.policy
        settings = self.settings
        retry = breaker = bulkhead = None
        counts: dict[str, int] = {}
        if self.breakers_on:
            # Seed 002 (Resilience4j) values from the library defaults; the wait in OPEN
            # and the slow-call threshold come from settings.
            config = BreakerConfig(
                wait_duration_in_open_state=settings.breaker_wait_s,
                slow_call_duration_threshold=settings.breaker_slow_call_s,
                record_exceptions=failure,
                record_result=failure_result,
            )
            breaker = CircuitBreaker(name, config)
        if self.retries_on:
            retry = Retry(
                name,
                RetryConfig(
                    initial_wait=retry_initial_wait_s,
                    retry_on=retry_on,
                    retry_on_result=retry_on_result,
                ),
                budget=RetryBudget(ratio=RETRY_BUDGET_RATIO),
            )

            def count(event: RetryScheduled | RetryGaveUp) -> None:
                outcome = "retried" if isinstance(event, RetryScheduled) else event.reason
                counts[outcome] = counts.get(outcome, 0) + 1

            retry.add_listener(count)
        if self.bulkheads_on:
            bulkhead = Bulkhead(
                name,
                BulkheadConfig(
                    max_concurrent_calls=bulkhead_calls, max_wait_duration=settings.bulkhead_max_wait_s
                ),
            )
        policy = Policy(retry=retry, breaker=breaker, bulkhead=bulkhead, attempt_timeout=attempt_timeout_s)
        self._dependencies[name] = _Dependency(policy, counts)
        return policy

    def collector(self) -> ResilienceCollector:
        return ResilienceCollector(self)

    def items(self) -> list[tuple[str, Policy, dict[str, int]]]:
        return [(name, dep.policy, dep.retries) for name, dep in self._dependencies.items()]


class ResilienceCollector(Collector):
    """Breaker, bulkhead and retry state of a `Guards`, read at scrape time."""

    def __init__(self, guards: Guards) -> None:
        self._guards = guards

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        label = ["dependency"]
        state = GaugeMetricFamily(
            "bookvault_breaker_state", "1 for the circuit breaker's current state", labels=[*label, "state"]
        )
        failure_rate = GaugeMetricFamily(
            "bookvault_breaker_failure_rate",
            "Percent failed in the window; -1 below the minimum calls",
            labels=label,
        )
        slow_rate = GaugeMetricFamily(
            "bookvault_breaker_slow_call_rate",
            "Percent slow in the window; -1 below the minimum calls",
            labels=label,
        )
        buffered = GaugeMetricFamily("bookvault_breaker_buffered_calls", "Calls in the window", labels=label)
        failed = GaugeMetricFamily(
            "bookvault_breaker_failed_calls", "Failed calls in the window", labels=label
        )
        slow = GaugeMetricFamily("bookvault_breaker_slow_calls", "Slow calls in the window", labels=label)
        not_permitted = CounterMetricFamily(
            "bookvault_breaker_not_permitted_calls", "Calls the breaker refused", labels=label
        )
        in_flight = GaugeMetricFamily("bookvault_bulkhead_in_flight", "Calls holding a slot", labels=label)
        queued = GaugeMetricFamily("bookvault_bulkhead_queued", "Calls waiting for a slot", labels=label)
        capacity = GaugeMetricFamily("bookvault_bulkhead_max_concurrent_calls", "Slots", labels=label)
        rejected = CounterMetricFamily(
            "bookvault_bulkhead_rejected_calls", "Calls the bulkhead refused", labels=label
        )
        retries = CounterMetricFamily(
            "bookvault_retry_attempts",
            "Failed attempts by what followed: retried, or the reason retrying stopped",
            labels=[*label, "outcome"],
        )
        for name, policy, retry_counts in self._guards.items():
            if policy.breaker is not None:
                m = policy.breaker.metrics()
                for each in BreakerState:
                    state.add_metric([name, each.value], 1.0 if m.state is each else 0.0)
                failure_rate.add_metric([name], -1.0 if m.failure_rate is None else m.failure_rate)
                slow_rate.add_metric([name], -1.0 if m.slow_call_rate is None else m.slow_call_rate)
                buffered.add_metric([name], float(m.buffered_calls))
                failed.add_metric([name], float(m.failed_calls))
                slow.add_metric([name], float(m.slow_calls))
                not_permitted.add_metric([name], float(m.not_permitted_calls))
            if policy.bulkhead is not None:
                b = policy.bulkhead.metrics()
                in_flight.add_metric([name], float(b.in_flight))
                queued.add_metric([name], float(b.queued))
                capacity.add_metric([name], float(b.max_concurrent_calls))
                rejected.add_metric([name], float(b.rejected))
            for outcome, value in sorted(retry_counts.items()):
                retries.add_metric([name, outcome], float(value))
        yield from (state, failure_rate, slow_rate, buffered, failed, slow, not_permitted)
        yield from (in_flight, queued, capacity, rejected, retries)
