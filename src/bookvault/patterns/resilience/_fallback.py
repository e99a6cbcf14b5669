"""Fallback: answer from somewhere else when the protected call fails.

    book = await fallback(lambda: policy.run(load), lambda exc: cache.get_stale(book_id))

Only `Exception`s reach the handler; cancellation and interpreter exit pass
through, since a cancelled caller wants no answer at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from ._filters import ExceptionFilter, compile_filter, validate_filter

__all__ = ["fallback"]

T = TypeVar("T")


async def fallback(
    operation: Callable[[], Awaitable[T]],
    handler: Callable[[Exception], Awaitable[T]],
    *,
    on: ExceptionFilter = Exception,
) -> T:
    """Await `operation()`; if it raises an exception matching `on`, await `handler(exc)` instead."""
    validate_filter(on, field="on")
    try:
        return await operation()
    except Exception as exc:
        if not compile_filter(on)(exc):
            raise
        return await handler(exc)
