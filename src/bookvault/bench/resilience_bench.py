"""Per-call overhead of circuit breakers and retry wrappers, ours against peers, in one run.

    python -m bookvault.bench.resilience_bench [--calls N] [--rounds R]

Every contender wraps the same trivial coroutine (it returns at once), called N
times in a row from one task, R rounds; the table shows the median round as
nanoseconds per call above the bare call, so what is left is the wrapper's own
cost. Three paths:

- success: the breaker is CLOSED (or the retry is not needed): the hot path;
- refused: the breaker is OPEN: how fast a call fails when a dependency is down;
- failure: the call raises once and is retried (retry wrappers, no wait).

Peers: pybreaker (sync only: its async path needs tornado, so it wraps a plain
function, which flatters it), aiobreaker, purgatory (in-memory unit of work),
tenacity and stamina. Retry waits are zero for every contender, so the table
measures bookkeeping, not sleeping.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import aiobreaker  # type: ignore[import-untyped]
import pybreaker
import stamina
import tenacity
from purgatory import AsyncCircuitBreakerFactory

from bookvault.patterns.resilience import (
    BreakerConfig,
    Bulkhead,
    CallNotPermitted,
    CircuitBreaker,
    Policy,
    Retry,
    RetryBudget,
    RetryConfig,
)

__all__ = ["Result", "main", "run"]

Loop = Callable[[int], Awaitable[None]]


class Boom(Exception):
    """The failure the contenders see."""


async def _ok() -> int:
    return 1


def _ok_sync() -> int:
    return 1


async def _boom() -> int:
    raise Boom


def _boom_sync() -> int:
    raise Boom


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    contender: str
    path: str
    ns_per_call: float  # above the bare call


async def _bare(n: int) -> None:
    for _ in range(n):
        await _ok()


# --- breakers: success path ----------------------------------------------------


def _ours_breaker() -> Loop:
    breaker = CircuitBreaker("bench")

    async def loop(n: int) -> None:
        for _ in range(n):
            await breaker.call(_ok)

    return loop


def _ours_policy() -> Loop:
    policy = Policy(
        retry=Retry("bench", budget=RetryBudget()),
        breaker=CircuitBreaker("bench"),
        bulkhead=Bulkhead("bench"),
    )

    async def loop(n: int) -> None:
        for _ in range(n):
            await policy.run(_ok, idempotent=True)

    return loop


def _pybreaker() -> Loop:
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=10)

    async def loop(n: int) -> None:
        for _ in range(n):
            breaker.call(_ok_sync)

    return loop


def _aiobreaker() -> Loop:
    breaker = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=10))

    async def loop(n: int) -> None:
        for _ in range(n):
            await breaker.call_async(_ok)

    return loop


def _purgatory() -> Loop:
    factory = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=10)

    async def loop(n: int) -> None:
        for _ in range(n):
            async with await factory.get_breaker("bench"):
                await _ok()

    return loop


# --- breakers: refused (open) path ------------------------------------------------


def _ours_breaker_open() -> Loop:
    breaker = CircuitBreaker("bench", BreakerConfig(wait_duration_in_open_state=3600))
    breaker.transition_to_open()

    async def loop(n: int) -> None:
        for _ in range(n):
            with contextlib.suppress(CallNotPermitted):
                await breaker.call(_ok)

    return loop


def _pybreaker_open() -> Loop:
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=3600)
    breaker.open()

    async def loop(n: int) -> None:
        for _ in range(n):
            with contextlib.suppress(pybreaker.CircuitBreakerError):
                breaker.call(_ok_sync)

    return loop


def _aiobreaker_open() -> Loop:
    breaker = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(hours=1))
    breaker.open()

    async def loop(n: int) -> None:
        for _ in range(n):
            with contextlib.suppress(aiobreaker.CircuitBreakerError):
                await breaker.call_async(_ok)

    return loop


def _purgatory_open() -> Loop:
    factory = AsyncCircuitBreakerFactory(default_threshold=1, default_ttl=3600)
    opened = False

    async def loop(n: int) -> None:
        nonlocal opened
        if not opened:
            try:
                async with await factory.get_breaker("bench"):
                    await _boom()
            except Boom:
                opened = True
        for _ in range(n):
            try:
                async with await factory.get_breaker("bench"):
                    await _ok()
            except Exception:  # noqa: BLE001, S110 - purgatory's OpenedState; the refusal is the point
                pass

    return loop


# --- retry wrappers ----------------------------------------------------------------


def _ours_retry() -> Loop:
    retry = Retry("bench", RetryConfig(initial_wait=0.0, max_wait=0.0), budget=RetryBudget())

    async def loop(n: int) -> None:
        for _ in range(n):
            await retry.run(_ok, idempotent=True)

    return loop


def _flaky() -> Callable[[], Awaitable[int]]:
    """Fails every other call: each logical call is one failure, then a success."""
    state = {"fail": False}

    async def call() -> int:
        state["fail"] = not state["fail"]
        if state["fail"]:
            raise Boom
        return 1

    return call


def _ours_retry_failing() -> Loop:
    # No budget here: peers have none, and a budget would stop retrying the flaky call.
    retry = Retry("bench", RetryConfig(initial_wait=0.0, max_wait=0.0, retry_on=Boom))
    flaky = _flaky()

    async def loop(n: int) -> None:
        for _ in range(n):
            await retry.run(flaky, idempotent=True)

    return loop


def _repeat(call: Callable[[], Awaitable[int]]) -> Loop:
    async def loop(n: int) -> None:
        for _ in range(n):
            await call()

    return loop


def _tenacity(target: Callable[[], Awaitable[int]] = _ok) -> Loop:
    @tenacity.retry(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_none())
    async def call() -> int:
        return await target()

    return _repeat(call)


def _stamina(target: Callable[[], Awaitable[int]] = _ok) -> Loop:
    @stamina.retry(on=Boom, attempts=3, wait_initial=0.0, wait_max=0.0, wait_jitter=0.0)
    async def call() -> int:
        return await target()

    return _repeat(call)


CONTENDERS: tuple[tuple[str, str, Callable[[], Loop]], ...] = (
    ("bookvault CircuitBreaker", "success", _ours_breaker),
    ("pybreaker (sync)", "success", _pybreaker),
    ("aiobreaker", "success", _aiobreaker),
    ("purgatory", "success", _purgatory),
    ("bookvault CircuitBreaker", "refused", _ours_breaker_open),
    ("pybreaker (sync)", "refused", _pybreaker_open),
    ("aiobreaker", "refused", _aiobreaker_open),
    ("purgatory", "refused", _purgatory_open),
    ("bookvault Retry + budget", "success", _ours_retry),
    ("tenacity", "success", _tenacity),
    ("stamina", "success", _stamina),
    ("bookvault Retry", "failure", _ours_retry_failing),
    ("tenacity", "failure", lambda: _tenacity(_flaky())),
    ("stamina", "failure", lambda: _stamina(_flaky())),
    ("bookvault Policy (retry+breaker+bulkhead)", "success", _ours_policy),
)


async def _time(loop: Loop, n: int) -> float:
    started = time.perf_counter_ns()
    await loop(n)
    return (time.perf_counter_ns() - started) / n


async def run(calls: int = 100_000, rounds: int = 5) -> list[Result]:
    stamina.set_testing(False)
    # stamina logs every retry by default; no other contender logs, so neither does it here.
    stamina.instrumentation.set_on_retry_hooks([])
    results: list[Result] = []
    bare = statistics.median([await _time(_bare, calls) for _ in range(rounds)])
    for name, path, make in CONTENDERS:
        loop = make()
        await loop(min(calls, 1000))  # warm-up
        median = statistics.median([await _time(loop, calls) for _ in range(rounds)])
        results.append(Result(name, path, median - bare))
    return results


def render(results: list[Result]) -> str:
    width = max(len(r.contender) for r in results)
    lines = [f"{'contender':<{width}}  {'path':<8}  ns/call over bare", "-" * (width + 30)]
    lines += [f"{r.contender:<{width}}  {r.path:<8}  {r.ns_per_call:>10.0f}" for r in results]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    print(render(asyncio.run(run(args.calls, args.rounds))))


if __name__ == "__main__":
    main()
