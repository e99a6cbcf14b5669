"""Cross-process invalidation of local tiers over Redis pub/sub.

One channel per cache namespace; `invalidate`, `set` and write-behind staging
publish the key from inside the same Lua script that changes the version, and every
process's hub evicts that key from its local tier as the message arrives.

Why pub/sub and not RESP3 client tracking: pub/sub works the same on a single Redis,
behind proxies and on Redis Cluster (classic PUBLISH reaches every node, so one
connection per process suffices, where tracking keeps its state per node and needs a
redirect connection to each); the message is part of the atomic script, so it is sent
exactly when the version changes; and processes hear only real invalidations, not
every fill another process makes to a key they read.

Pub/sub is at-most-once, so a listener is told to forget everything (`reset`)
whenever messages may have been missed: when the connection drops (`live=False`: the
local tier is bypassed until messages flow again) and whenever a subscription is
confirmed, including the silent resubscribe redis-py performs after reconnecting.
A connection that stops answering is found by a PING after `health_interval`
seconds of silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from bookvault.patterns.clock import Clock, SystemClock

from .backend import InvalidationListener
from .errors import CacheBackendError

__all__ = ["RedisInvalidationHub"]

log = logging.getLogger(__name__)


def _connected(pubsub: PubSub) -> bool:
    # redis-py annotates `connection` as always None; it is set once connected.
    return getattr(pubsub, "connection", None) is not None


class _HubSubscription:
    __slots__ = ("_channel", "_hub", "_listener")

    def __init__(self, hub: RedisInvalidationHub, channel: str, listener: InvalidationListener) -> None:
        self._hub = hub
        self._channel = channel
        self._listener = listener

    async def aclose(self) -> None:
        await self._hub._remove(self._channel, self._listener)


class RedisInvalidationHub:
    """One pub/sub connection for all of a process's local tiers on one Redis."""

    def __init__(
        self,
        client: Redis,
        *,
        health_interval: float = 5.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
        clock: Clock | None = None,
    ) -> None:
        self._client = client
        self._health_interval = health_interval
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._clock = clock or SystemClock()
        self._listeners: dict[str, list[InvalidationListener]] = {}
        self._confirmed: set[str] = set()
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._healthy = True  # for logging transitions only

    async def subscribe(self, channel: str, listener: InvalidationListener) -> _HubSubscription:
        listeners = self._listeners.setdefault(channel, [])
        listeners.append(listener)
        listener.reset(live=channel in self._confirmed)
        pubsub = self._pubsub
        if len(listeners) == 1 and pubsub is not None and _connected(pubsub):
            # Sent from this task while the hub's task reads; the confirmation arrives
            # there. A failure here shows up there too, as a lost connection.
            with contextlib.suppress(RedisError, OSError):
                await pubsub.subscribe(channel)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cache-invalidations")
        return _HubSubscription(self, channel, listener)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._lost()
        self._listeners.clear()

    async def _remove(self, channel: str, listener: InvalidationListener) -> None:
        listeners = self._listeners.get(channel, [])
        if listener in listeners:
            listeners.remove(listener)
            listener.reset(live=False)
        if listeners:
            return
        self._listeners.pop(channel, None)
        self._confirmed.discard(channel)
        if not self._listeners:
            await self.aclose()
        elif self._pubsub is not None and _connected(self._pubsub):
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(channel)

    async def _run(self) -> None:
        try:
            await self._connect_and_listen()
        finally:
            # However this task ends, no local tier may go on trusting its contents.
            self._lost()

    async def _connect_and_listen(self) -> None:
        delay = self._backoff_initial
        while self._listeners:
            pubsub = self._client.pubsub()
            self._pubsub = pubsub
            try:
                requested = list(self._listeners)
                await pubsub.subscribe(*requested)
                # Channels added while this connection was being made.
                missing = set(self._listeners) - set(requested)
                if missing:
                    await pubsub.subscribe(*missing)
                await self._listen(pubsub)
            except Exception as exc:  # noqa: BLE001  # any failure: bypass the local tiers, reconnect
                if self._healthy:
                    log.warning("cache invalidations lost (%s); local tiers bypassed until back", exc)
                    self._healthy = False
                if self._confirmed:
                    delay = self._backoff_initial  # it worked until now: retry soon
                self._lost()
            finally:
                self._pubsub = None
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped upstream
            await self._clock.sleep(delay)
            delay = min(delay * 2, self._backoff_max)

    async def _listen(self, pubsub: PubSub) -> None:
        awaiting_pong = False
        while True:
            message = await pubsub.get_message(timeout=self._health_interval)
            if message is None:
                if awaiting_pong:
                    raise CacheBackendError(f"no answer to PING within {self._health_interval}s")
                await pubsub.ping()
                awaiting_pong = True
                continue
            awaiting_pong = False
            self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind not in ("message", "subscribe"):
            return  # pong, unsubscribe
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        if kind == "message":
            data = message["data"]
            key = data.decode() if isinstance(data, bytes) else str(data)
            for listener in self._listeners.get(channel, ()):
                listener.invalidated(key)
            return
        # A first subscription, or redis-py's silent resubscribe after a reconnect:
        # either way, messages published before this point may have been missed.
        self._confirmed.add(channel)
        if not self._healthy:
            log.info("cache invalidations flowing again")
            self._healthy = True
        for listener in self._listeners.get(channel, ()):
            listener.reset(live=True)

    def _lost(self) -> None:
        self._confirmed.clear()
        for listeners in self._listeners.values():
            for listener in listeners:
                listener.reset(live=False)
