"""Counters per cache, read as a snapshot; exporting them is the service's job.

Plain integer attributes keep the hot path to one increment. `snapshot()` copies
them into a frozen value that an exporter can read without racing the cache.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["CacheMetrics", "CacheStats"]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A point-in-time copy of one cache's counters.

    hits_l1, hits_l2   reads answered by the in-process / shared tier (negative hits included)
    negative_hits      of those, reads answered by a remembered miss
    misses             reads that found nothing and went to the loader
    coalesced          callers that shared another caller's in-flight read
    stale_serves       reads answered by an entry past its TTL while it was refreshed
    loads              loader calls (misses, refreshes and degraded reads)
    fills              entries written to the shared tier by a load
    fill_rejections    fills refused because the key was invalidated while loading
    early_refreshes    background refreshes (XFetch or stale-while-revalidate)
    lease_waits        reads that waited for another process's fill
    lease_timeouts     of those, reads that gave up waiting and loaded themselves
    invalidations      invalidate() and set() calls
    invalidations_received   keys evicted from the local tier by an invalidation message
                       (including the echo of this process's own)
    local_resets       times the local tier was cleared because invalidations may have been missed
    evictions          local entries pushed out by the size bound
    errors             shared-tier failures and unreadable entries
    degraded_loads     loads that bypassed the shared tier because it was failing
    """

    name: str
    hits_l1: int
    hits_l2: int
    negative_hits: int
    misses: int
    coalesced: int
    stale_serves: int
    loads: int
    fills: int
    fill_rejections: int
    early_refreshes: int
    lease_waits: int
    lease_timeouts: int
    invalidations: int
    invalidations_received: int
    local_resets: int
    evictions: int
    errors: int
    degraded_loads: int
    local_size: int

    @property
    def hits(self) -> int:
        return self.hits_l1 + self.hits_l2

    @property
    def hit_ratio(self) -> float:
        served = self.hits + self.stale_serves + self.misses
        return (self.hits + self.stale_serves) / served if served else 0.0


class CacheMetrics:
    __slots__ = (
        "coalesced",
        "degraded_loads",
        "early_refreshes",
        "errors",
        "evictions",
        "fill_rejections",
        "fills",
        "hits_l1",
        "hits_l2",
        "invalidations",
        "invalidations_received",
        "lease_timeouts",
        "lease_waits",
        "loads",
        "local_resets",
        "misses",
        "name",
        "negative_hits",
        "stale_serves",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits_l1 = 0
        self.hits_l2 = 0
        self.negative_hits = 0
        self.misses = 0
        self.coalesced = 0
        self.stale_serves = 0
        self.loads = 0
        self.fills = 0
        self.fill_rejections = 0
        self.early_refreshes = 0
        self.lease_waits = 0
        self.lease_timeouts = 0
        self.invalidations = 0
        self.invalidations_received = 0
        self.local_resets = 0
        self.evictions = 0
        self.errors = 0
        self.degraded_loads = 0

    def snapshot(self, local_size: int = 0, evictions: int = 0) -> CacheStats:
        counters: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(CacheStats) if f.name in self.__slots__
        }
        counters["evictions"] = self.evictions + evictions
        return CacheStats(**counters, local_size=local_size)
