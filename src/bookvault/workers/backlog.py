"""How far behind the event flow is, for `bookvault status`: each outbox's
unpublished rows, and each consumer group's lag on its stream.

Every probe has a short timeout and reports what it cannot reach as down.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from bookvault.config import Settings
from bookvault.patterns.outbox import backlog
from bookvault.workers.streams import GROUPS, OUTBOX_SERVICES, group_lag

__all__ = ["event_backlog"]

PROBE_TIMEOUT_S = 2.0


async def _outbox(settings: Settings, service: str) -> dict[str, Any]:
    report: dict[str, Any] = {"service": service, "state": "down"}
    try:
        conn = await asyncpg.connect(settings.service_database_url(service), timeout=PROBE_TIMEOUT_S)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        report["error"] = str(exc) or type(exc).__name__
        return report
    try:
        pending, oldest_s = await backlog(conn)
    except asyncpg.UndefinedTableError:
        return {**report, "state": "no outbox"}
    except (OSError, asyncpg.PostgresError) as exc:
        report["error"] = str(exc) or type(exc).__name__
        return report
    finally:
        await conn.close()
    return {**report, "state": "up", "pending": pending, "oldest_s": round(oldest_s, 3)}


async def _streams(settings: Settings) -> list[dict[str, Any]]:
    if settings.redis_url is None:
        return []
    client = aioredis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=PROBE_TIMEOUT_S, socket_timeout=PROBE_TIMEOUT_S
    )
    rows: list[dict[str, Any]] = []
    try:
        for group in GROUPS:
            row: dict[str, Any] = {"stream": group.stream, "group": group.group}
            try:
                found = group_lag(await client.xinfo_groups(group.stream), group.group)
            except ResponseError:  # the stream does not exist yet
                found = None
            except (RedisError, OSError) as exc:
                rows.append({**row, "state": "down", "error": str(exc)})
                continue
            undelivered, pending = found if found is not None else (0, 0)
            rows.append({**row, "state": "up", "lag": undelivered + pending, "pending": pending})
    finally:
        await client.aclose()
    return rows


async def event_backlog(settings: Settings) -> dict[str, Any]:
    """{"outbox": [per service: pending, oldest_s], "streams": [per group: lag, pending]}."""
    outboxes, streams = await asyncio.gather(
        asyncio.gather(*(_outbox(settings, service) for service in OUTBOX_SERVICES)), _streams(settings)
    )
    return {"outbox": list(outboxes), "streams": streams}
