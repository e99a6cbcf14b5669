"""Cache-aside as a decorator.

    @books.cached(key=lambda book_id: str(book_id))
    async def book(book_id: int) -> Book | None:
        return await repo.book(book_id)

    await book(42)              # through the cache
    await book.invalidate(42)   # after a commit that changed book 42

The decorated function keeps its parameters for type checkers; it returns `V | None`
(None: not found, cached negatively).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, ParamSpec, TypeVar

if TYPE_CHECKING:
    from .cache import Cache

__all__ = ["CachedFunction", "cached"]

P = ParamSpec("P")
V = TypeVar("V")


class CachedFunction(Generic[P, V]):
    __slots__ = ("__dict__", "_cache", "_func", "_key")
    __name__: str  # set by functools.update_wrapper, with __qualname__, __doc__, __wrapped__
    __qualname__: str

    def __init__(
        self, cache: Cache[V], func: Callable[P, Awaitable[V | None]], key: Callable[..., str]
    ) -> None:
        self._cache = cache
        self._func = func
        self._key = key
        functools.update_wrapper(self, func)

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> V | None:
        func = self._func
        return await self._cache.get_or_load(self._key(*args, **kwargs), lambda: func(*args, **kwargs))

    def key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The cache key a call with these arguments uses."""
        return self._key(*args, **kwargs)

    async def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Invalidate what a call with these arguments would read (after the commit)."""
        await self._cache.invalidate(self._key(*args, **kwargs))

    @property
    def cache(self) -> Cache[V]:
        return self._cache


def _default_key(func: Callable[..., object]) -> Callable[..., str]:
    # The function's identity plus the str() of each argument. Methods should pass
    # `key=`: the default would include the instance's str().
    prefix = f"{func.__module__}.{func.__qualname__}"

    def key(*args: object, **kwargs: object) -> str:
        parts = [prefix, *map(str, args), *(f"{k}={kwargs[k]}" for k in sorted(kwargs))]
        return ":".join(parts)

    return key


def cached(
    cache: Cache[V], key: Callable[..., str] | None = None
) -> Callable[[Callable[P, Awaitable[V | None]]], CachedFunction[P, V]]:
    """Route calls of an async function through `cache.get_or_load`.

    `key` builds the cache key from the call's arguments (it is called with exactly
    the arguments of the call); by default it is the function's qualified name and
    the arguments' str(). The decorated function's own signature is what callers
    and type checkers see.
    """

    def decorate(func: Callable[P, Awaitable[V | None]]) -> CachedFunction[P, V]:
        return CachedFunction(cache, func, key or _default_key(func))

    return decorate
