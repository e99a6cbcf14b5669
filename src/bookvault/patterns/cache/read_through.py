"""Read-through: the cache owns the loader, callers only name keys.

    books = ReadThrough(cache, lambda key: repo.book(int(key)))
    book = await books.get("42")

Cache-aside (`Cache.get_or_load`) leaves the loading to each call site; read-through
binds one loader at construction so every reader of the cache loads the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from .cache import Cache

__all__ = ["ReadThrough"]

V = TypeVar("V")


class ReadThrough(Generic[V]):
    __slots__ = ("_cache", "_loader")

    def __init__(self, cache: Cache[V], loader: Callable[[str], Awaitable[V | None]]) -> None:
        self._cache = cache
        self._loader = loader

    @property
    def cache(self) -> Cache[V]:
        return self._cache

    async def get(self, key: str) -> V | None:
        loader = self._loader
        return await self._cache.get_or_load(key, lambda: loader(key))

    async def invalidate(self, key: str) -> None:
        await self._cache.invalidate(key)
