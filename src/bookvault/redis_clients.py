"""The redis-py client the services and the gateway open for commands.

Short timeouts and no retries inside redis-py, because every caller has its own
degraded mode (read the database, fall back to a local limiter, keep the last
revocation list) and a hidden retry would only double the wait before it.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

__all__ = ["fail_fast"]


def fail_fast(url: str, timeout_s: float) -> Redis:
    client: Redis = Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    return client
