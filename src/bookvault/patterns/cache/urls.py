"""Backends chosen by URL: `memory://` or a Redis URL (`redis://`, `rediss://`, `unix://`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis

from .backend import CacheBackend
from .errors import CacheConfigError
from .memory import MemoryBackend
from .redis_backend import RedisBackend

__all__ = ["backend_from_url"]


def backend_from_url(url: str, **options: Any) -> CacheBackend:
    """A backend for `url`; `options` go to the backend's constructor.

    A Redis backend made here owns its client and closes it in `aclose`. Building it
    opens no connection; the first command does.
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryBackend(**options)
    if scheme in ("redis", "rediss", "unix"):
        return RedisBackend(Redis.from_url(url), owns_client=True, **options)
    raise CacheConfigError(f"no cache backend for {url!r}: use memory:// or redis://host:port/db")
