"""Worker processes under the supervisor, scaled on their consumer groups' lag.

`bookvault up` starts `workers_min` processes (`python -m bookvault.workers`)
named worker-1, worker-2, ...; each tick it reads the lag of every consumer
group the workers run and starts or stops processes between `workers_min` and
`workers_max` (bookvault.workers.scaling decides). A stopped worker finishes
its batch first; a crashed one is restarted like any other component.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import redis
from redis.exceptions import RedisError, ResponseError

from bookvault.config import Settings
from bookvault.patterns.clock import Clock, SystemClock
from bookvault.stack.errors import StackError
from bookvault.stack.paths import StatePaths
from bookvault.stack.processes import ChildProcess
from bookvault.stack.supervisor import Component, Supervisor
from bookvault.workers.scaling import Autoscaler
from bookvault.workers.streams import GROUPS, group_lag

__all__ = ["SCALE_INTERVAL_S", "WorkerPool", "read_lag", "worker_component"]

# The lag is read, and the number of workers reconsidered, this often.
SCALE_INTERVAL_S = 2.0
# Lag must stay low this long before a worker is stopped.
SCALE_DOWN_COOLDOWN_S = 30.0
_PROBE_TIMEOUT_S = 1.0


def worker_component(index: int, settings: Settings, paths: StatePaths) -> Component:
    name = f"worker-{index}"
    env = {**os.environ, **settings.as_environment(), "PYTHONUNBUFFERED": "1"}
    process = ChildProcess(
        name, [sys.executable, "-m", "bookvault.workers"], paths.log(name), env=env, stop_timeout_s=15.0
    )
    return Component(name, "worker", "consumer group " + ", ".join(g.group for g in GROUPS), process=process)


def read_lag(redis_url: str | None) -> int | None:
    """The largest lag (undelivered + unacked) among the workers' groups; None when
    Redis cannot be asked."""
    if redis_url is None:
        return None
    client = redis.Redis.from_url(
        redis_url, socket_timeout=_PROBE_TIMEOUT_S, socket_connect_timeout=_PROBE_TIMEOUT_S
    )
    try:
        lags = [0]
        for group in GROUPS:
            try:
                info = client.xinfo_groups(group.stream)
            except ResponseError:  # no such stream yet: nothing to do
                continue
            found = group_lag(info, group.group)
            if found is not None:
                lags.append(sum(found))
        return max(lags)
    except (RedisError, OSError):
        return None
    finally:
        client.close()


class WorkerPool:
    """The worker components of one supervisor, and their scaling."""

    def __init__(
        self,
        settings: Settings,
        paths: StatePaths,
        supervisor: Supervisor,
        *,
        clock: Clock | None = None,
        lag: Callable[[], int | None] | None = None,
        make: Callable[[int], Component] | None = None,
        emit: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self._supervisor = supervisor
        self._clock = clock or SystemClock()
        self._lag = lag or (lambda: read_lag(settings.redis_url))
        self._make = make or (lambda index: worker_component(index, settings, paths))
        self._emit = emit
        self.autoscaler = Autoscaler(
            self._clock,
            minimum=settings.workers_min,
            maximum=settings.workers_max,
            lag_per_worker=settings.workers_lag_per_worker,
            cooldown_s=SCALE_DOWN_COOLDOWN_S,
        )
        self._next_check: float | None = None

    def _name(self, index: int) -> str:
        return f"worker-{index}"

    def running(self) -> int:
        """Worker processes that run or are due to restart (a crash is not a scale-down)."""
        return sum(
            1
            for c in self._supervisor.components
            if c.kind == "worker" and c.state in ("starting", "running", "restarting")
        )

    def start(self) -> None:
        names = []
        for index in range(1, self.autoscaler.minimum + 1):
            self._supervisor.add(self._make(index), start=False)
            names.append(self._name(index))
        self._supervisor.start_many(tuple(names))

    def tick(self) -> int:
        """Reconsider the number of workers when due; return how many run after."""
        now = self._clock.monotonic()
        if self._next_check is not None and now < self._next_check:
            return self.running()
        self._next_check = now + SCALE_INTERVAL_S
        lag = self._lag()
        running = self.running()
        target = self.autoscaler.decide(lag, running)
        if target > running:
            self._emit(f"workers: lag {lag}, scaling up to {target}")
        elif target < running:
            self._emit(f"workers: lag {lag}, scaling down to {target}")
        for index in range(1, self.autoscaler.maximum + 1):
            name = self._name(index)
            known = name in self._supervisor.names()
            active = known and self._supervisor.get(name).state in ("starting", "running", "restarting")
            if index <= target and not active:
                try:
                    if known:
                        self._supervisor.start(name)
                    else:
                        self._supervisor.add(self._make(index))
                except (OSError, StackError) as exc:  # tried again next tick
                    self._emit(f"{name} could not be started: {exc}")
            elif index > target and active:
                self._supervisor.stop(name)
        return self.running()
