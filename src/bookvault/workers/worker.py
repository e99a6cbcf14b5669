"""One worker process: the borrowing outbox relay, the late-fee consumer and the
transaction summary projector.

Several processes may run side by side (the supervisor scales them on lag):
the relay serialises itself with an advisory lock, each process is its own
consumer in the group, and messages a dead process held are claimed by the
others after `CLAIM_IDLE_MS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import timedelta

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bookvault.auth import TokenCodec
from bookvault.config import Settings
from bookvault.logs import get_logger
from bookvault.patterns.outbox import PublishError, RedisStreamsPublisher, Relay, StreamConsumer
from bookvault.workers.late_fees import LateFeeCharger, RetryLater
from bookvault.workers.streams import LATE_FEES, SUMMARIES
from bookvault.workers.summaries import SummaryProjector

__all__ = ["run"]

log = get_logger("bookvault.workers")
# The relay polls this often when idle and publishes this many events per batch.
RELAY_POLL_S = 0.1
RELAY_BATCH = 500
# After a failure (broker or accounts unreachable), wait this long before trying again.
BACKOFF_S = 1.0
# A consumer blocks this long for new messages, so a stop request is seen this soon.
BLOCK_MS = 250
# A message unacked this long by its consumer (presumed dead) is taken over by another.
CLAIM_IDLE_MS = 30_000
HTTP_TIMEOUT_S = 10.0
# Handled event ids are kept this long (far beyond any redelivery), then forgotten
# in batches of INBOX_PURGE_BATCH every MAINTENANCE_INTERVAL_S.
INBOX_RETENTION = timedelta(days=7)
INBOX_PURGE_BATCH = 1000
MAINTENANCE_INTERVAL_S = 60.0


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _relay(relay: Relay, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await relay.drain()
        except (PublishError, asyncpg.PostgresError, OSError) as exc:
            log.warning("relaying loan events failed; retrying", error=str(exc))
            await _pause(stop, BACKOFF_S)
            continue
        except Exception:  # a relay that stops would strand every later event: log, go on
            log.exception("relaying loan events failed unexpectedly; retrying")
            await _pause(stop, BACKOFF_S)
            continue
        await _pause(stop, RELAY_POLL_S)


async def _maintain(projector: SummaryProjector, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            while await projector.forget_handled(INBOX_RETENTION, INBOX_PURGE_BATCH) == INBOX_PURGE_BATCH:
                if stop.is_set():
                    break
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("inbox cleanup failed; retrying", error=str(exc))
        await _pause(stop, MAINTENANCE_INTERVAL_S)


async def _consume(consumer: StreamConsumer, group: str, stop: asyncio.Event) -> None:
    # The group is (re)created at start and after a Redis error (Redis may have restarted empty).
    need_group = True
    while not stop.is_set():
        try:
            if need_group:
                await consumer.ensure_group()
                need_group = False
            await consumer.consume_once(block_ms=BLOCK_MS)
        except (RetryLater, RedisError, asyncpg.PostgresError, OSError) as exc:
            # The message stays pending and is claimed again after CLAIM_IDLE_MS.
            need_group = need_group or isinstance(exc, RedisError | OSError)
            log.warning("event handling deferred", group=group, error=str(exc))
            await _pause(stop, BACKOFF_S)
        except Exception:  # e.g. a malformed event: it stays pending, the others go on
            log.exception("event handling failed unexpectedly", group=group)
            await _pause(stop, BACKOFF_S)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Relay and consume until `stop` is set; the current batch is finished first."""
    if settings.redis_url is None:
        raise SystemExit("the workers need Redis: set BOOKVAULT_REDIS_URL")
    codec = TokenCodec(settings.resolved_jwt_secret(), settings.jwt_algorithm, settings.jwt_issuer)
    pool = await asyncpg.create_pool(settings.service_database_url("borrowing"), min_size=1, max_size=2)
    accounts_pool = await asyncpg.create_pool(
        settings.service_database_url("accounts"), min_size=1, max_size=2
    )
    redis = aioredis.from_url(settings.redis_url)
    publisher = RedisStreamsPublisher(redis)
    try:
        timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            charger = LateFeeCharger(
                session, settings.service_url("accounts"), lambda: codec.sign("workers", "service")
            )
            projector = SummaryProjector(accounts_pool)
            consumers = {
                group.group: StreamConsumer(
                    redis,
                    stream=group.stream,
                    topic=group.topic,
                    group=group.group,
                    name=f"{group.group}-{os.getpid()}",
                    handler=handler,
                    claim_idle_ms=CLAIM_IDLE_MS,
                )
                for group, handler in ((LATE_FEES, charger), (SUMMARIES, projector))
            }
            relay = Relay(pool, publisher, batch_size=RELAY_BATCH)
            log.info("worker started", pid=os.getpid())
            await asyncio.gather(
                _relay(relay, stop),
                _maintain(projector, stop),
                *(_consume(c, name, stop) for name, c in consumers.items()),
            )
            for consumer in consumers.values():
                with contextlib.suppress(RedisError, OSError):
                    await consumer.leave()
    finally:
        await redis.aclose()
        await accounts_pool.close()
        await pool.close()
        log.info("worker stopped")
