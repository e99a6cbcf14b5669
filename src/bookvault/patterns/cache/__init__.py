"""Caching that is fast and never lies: two tiers, stampede defences, fenced fills.

    backend = RedisBackend(redis)                       # or MemoryBackend(), backend_from_url(url)
    books = Cache("books", Book, backend, policy=CachePolicy(ttl=300), local=LocalPolicy())
    book = await books.get_or_load(str(book_id), lambda: repo.book(book_id))   # cache-aside
    await books.invalidate(str(book_id))                # after the commit
    await books.set(str(book_id), book)                 # write-through, after the commit
    await books.refresh(str(book_id), loader)           # refresh-ahead (keep a hot key warm), fenced

    @books.cached(key=lambda book_id: str(book_id))     # cache-aside as a decorator
    async def book(book_id: int) -> Book | None: ...

    ReadThrough(books, loader)                          # read-through
    WriteBehindQueue(books) / WriteBehindFlusher(books, apply)   # write-behind, durable

Patterns: cache-aside, read-through, write-through and write-behind (a Redis Stream
with a consumer group; never only in memory); an in-process tier over Redis with
cross-process invalidation by pub/sub (`invalidation`); single-flight per key, a fill
lease across processes, XFetch early recompute, TTL jitter, negative caching,
stale-while-revalidate (`cache`, `expiry`); version fencing so a slow fill cannot
overwrite an invalidation (`cache`, `lua/fill.lua`); counters per cache (`metrics`).
When Redis fails, reads go to the loader and nothing is raised to the reader.

Exceptions:

    CacheError
    ├── CacheConfigError      bad settings, raised when the object is built (also a ValueError)
    └── CacheBackendError     the storage failed; readers never see it, durable writes do
        └── CacheTimeoutError the storage did not answer within its timeout
"""

from __future__ import annotations

from .backend import CacheBackend, Claim, InvalidationListener, Subscription
from .cache import Cache, Loader
from .decorator import CachedFunction, cached
from .entry import Codec, Entry, JsonCodec, MsgpackCodec
from .errors import CacheBackendError, CacheConfigError, CacheError, CacheTimeoutError
from .expiry import jittered_ttl, xfetch_due
from .invalidation import RedisInvalidationHub
from .memory import MemoryBackend
from .metrics import CacheMetrics, CacheStats
from .policy import CachePolicy, LocalPolicy
from .read_through import ReadThrough
from .redis_backend import RedisBackend
from .urls import backend_from_url
from .write_behind import PendingWrite, WriteBehindFlusher, WriteBehindQueue, WriteBehindStats

__all__ = [
    "Cache",
    "CacheBackend",
    "CacheBackendError",
    "CacheConfigError",
    "CacheError",
    "CacheMetrics",
    "CachePolicy",
    "CacheStats",
    "CacheTimeoutError",
    "CachedFunction",
    "Claim",
    "Codec",
    "Entry",
    "InvalidationListener",
    "JsonCodec",
    "Loader",
    "LocalPolicy",
    "MemoryBackend",
    "MsgpackCodec",
    "PendingWrite",
    "ReadThrough",
    "RedisBackend",
    "RedisInvalidationHub",
    "Subscription",
    "WriteBehindFlusher",
    "WriteBehindQueue",
    "WriteBehindStats",
    "backend_from_url",
    "cached",
    "jittered_ttl",
    "xfetch_due",
]
