"""The cache's exceptions; the tree is drawn in the package docstring.

Lower-level errors (redis-py, sockets, timeouts) are translated once, at the backend
boundary, with `raise ... from exc`; code above the backend only sees these.
"""

from __future__ import annotations

__all__ = [
    "CacheBackendError",
    "CacheConfigError",
    "CacheError",
    "CacheTimeoutError",
]


class CacheError(Exception):
    """Base of every error raised by `bookvault.patterns.cache`."""


class CacheConfigError(CacheError, ValueError):
    """A cache, policy or backend was built with settings that cannot work."""


class CacheBackendError(CacheError):
    """The storage behind the cache failed: unreachable, refused, or answered nonsense.

    Reads never surface it (they fall through to the loader); writes that need
    durability, such as a write-behind enqueue, do.
    """


class CacheTimeoutError(CacheBackendError):
    """The storage did not answer within the backend's timeout."""
