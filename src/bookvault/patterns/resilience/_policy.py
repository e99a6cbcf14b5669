"""One dependency's resilience, composed in a fixed order:

    fallback( retry( breaker( bulkhead( timeout( call ) ) ) ) )

    catalog = Policy(
        retry=Retry("catalog", budget=RetryBudget()),
        breaker=breakers.get("catalog"),
        bulkhead=Bulkhead("catalog"),
        attempt_timeout=2.0,
    )
    book = await catalog.run(lambda: client.get_book(book_id), idempotent=True, fallback=stale_book)

Every layer is optional. Why this order is given in the package docstring.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from ..clock import Clock
from ._breaker import CircuitBreaker
from ._bulkhead import Bulkhead
from ._deadline import Deadline, current_deadline, timeout, use_deadline
from ._errors import DeadlineExceeded
from ._retry import Retry

__all__ = ["Policy"]

P = ParamSpec("P")
T = TypeVar("T")


class Policy:
    __slots__ = ("attempt_timeout", "breaker", "bulkhead", "clock", "retry")

    def __init__(
        self,
        *,
        retry: Retry | None = None,
        breaker: CircuitBreaker | None = None,
        bulkhead: Bulkhead | None = None,
        attempt_timeout: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        if attempt_timeout is not None and not attempt_timeout > 0:
            raise ValueError(f"attempt_timeout must be > 0 seconds or None, got {attempt_timeout!r}")
        self.retry = retry
        self.breaker = breaker
        self.bulkhead = bulkhead
        self.attempt_timeout = attempt_timeout
        self.clock = clock

    def __repr__(self) -> str:
        layers = [repr(layer) for layer in (self.retry, self.breaker, self.bulkhead) if layer is not None]
        if self.attempt_timeout is not None:
            layers.append(f"timeout={self.attempt_timeout}s")
        return f"<Policy {' > '.join(layers) or 'pass-through'}>"

    async def run(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        idempotent: bool = False,
        idempotency_key: str | None = None,
        deadline: Deadline | None = None,
        fallback: Callable[[Exception], Awaitable[T]] | None = None,
    ) -> T:
        """Await `operation()` through every configured layer.

        `deadline` (or the current one) bounds everything: retries, bulkhead waits
        and each attempt. `fallback` receives any exception that escapes the
        chain, rejections included, and its return value becomes the result.
        """
        with use_deadline(deadline) as effective:
            try:
                if effective is not None and effective.expired:
                    # Refused before any layer: a spent budget is the caller's state, not
                    # the dependency's, so it must not count as a breaker failure.
                    raise DeadlineExceeded(0.0)
                if self.retry is not None:
                    return await self.retry.run(
                        lambda: self._attempt(operation),
                        idempotent=idempotent,
                        idempotency_key=idempotency_key,
                    )
                return await self._attempt(operation)
            except Exception as exc:
                if fallback is None:
                    raise
                return await fallback(exc)

    def wrap(
        self, *, idempotent: bool = False, fallback: Callable[[Exception], Awaitable[T]] | None = None
    ) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Coroutine[Any, Any, T]]]:
        """A decorator running every call of the function through `run`."""

        def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
            @functools.wraps(fn)
            async def protected(*args: P.args, **kwargs: P.kwargs) -> T:
                return await self.run(lambda: fn(*args, **kwargs), idempotent=idempotent, fallback=fallback)

            return protected

        return decorate

    async def _attempt(self, operation: Callable[[], Awaitable[T]]) -> T:
        if self.breaker is not None:
            return await self.breaker.call(self._isolated, operation)
        return await self._isolated(operation)

    async def _isolated(self, operation: Callable[[], Awaitable[T]]) -> T:
        if self.bulkhead is not None:
            async with self.bulkhead:
                return await self._timed(operation)
        return await self._timed(operation)

    async def _timed(self, operation: Callable[[], Awaitable[T]]) -> T:
        if self.attempt_timeout is None and current_deadline() is None:
            return await operation()
        limit = (
            None if self.attempt_timeout is None else Deadline.after(self.attempt_timeout, clock=self.clock)
        )
        async with timeout(limit):
            return await operation()
