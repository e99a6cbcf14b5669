"""Revoked tokens, kept in Redis and known by every gateway process without asking it.

What can be revoked:

* one token, by its id (`jti`): until that token's own expiry;
* every token of a subject issued before a time (logout everywhere, a compromised
  account): until the longest token lifetime the gateway accepts (`jwt_max_ttl_s`)
  has passed since that time, after which no such token can still be valid.

Storage (the stack's Redis; one hash tag, so both keys sit in one Cluster slot):

    bookvault:{revocations}:tokens     sorted set: jti -> the token's expiry
    bookvault:{revocations}:subjects   sorted set: subject -> tokens issued before this are refused
    bookvault:revocations              pub/sub channel: one JSON message per revocation

An entry lives for its token's remaining life: each write drops the entries whose
time is up and moves the key's expiry to its longest-lived entry. One script does
the add, the pruning, the expiry and the publish, so a revocation is either stored
and announced or neither.

The hot path. Checking a token against Redis would add a round trip to every
authenticated request (the limiter already spends the one a request may cost). So
each process keeps the whole list in memory, a dict lookup per request, fed by the
channel. Pub/sub delivers at most once, so whenever the subscription is (re)confirmed
the process loads the whole list again (one round trip) and merges it: revocations
made while it was not listening are picked up then. Revocations only ever add, so a
merge cannot lose one.

While the subscription is down (Redis unreachable), the process goes on applying the
list it last had; revocations made meanwhile take effect when it is back. That
trade is deliberate (a Redis outage must not log everyone out) and observable:
`bookvault_gateway_revocations_live` is 0 and a warning is logged. Operators who
prefer refusing to guessing set `revocation_fail_closed`: authenticated requests
then get 503 with `Retry-After` until the list is current again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterator
from typing import Literal

import msgspec
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bookvault.auth import VerifiedToken
from bookvault.config import Settings
from bookvault.patterns.cache import RedisInvalidationHub
from bookvault.patterns.clock import Clock, SystemClock
from bookvault.redis_clients import fail_fast

__all__ = [
    "CHANNEL",
    "SUBJECTS_KEY",
    "TOKENS_KEY",
    "Revocation",
    "RevocationCollector",
    "RevocationList",
    "RevocationStore",
    "RevocationStoreError",
    "canonical_subject",
    "revocation_list",
]

log = logging.getLogger(__name__)

CHANNEL = "bookvault:revocations"
TOKENS_KEY = "bookvault:{revocations}:tokens"
SUBJECTS_KEY = "bookvault:{revocations}:subjects"
_TIMEOUT_S = 0.5
_RELOAD_BACKOFF_S = (0.05, 2.0)
_PRUNE_EVERY_S = 60.0

# KEYS[1] the sorted set; ARGV: member, score, seconds an entry outlives its score,
# now (seconds), channel, message. Scores are seconds; expiries in milliseconds.
_REVOKE = """
local keep = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (tonumber(ARGV[4]) - keep))
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], math.ceil((tonumber(last[2]) + keep) * 1000))
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
"""


class RevocationStoreError(Exception):
    """Redis could not store or return revocations."""


class Revocation(msgspec.Struct, frozen=True):
    """One revocation as stored and announced.

    kind "token":   `id` is a token id; `at` is that token's expiry.
    kind "subject": `id` is a subject; tokens issued before `at` are refused.
    """

    kind: Literal["token", "subject"]
    id: str
    at: float


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Revocation).decode


def canonical_subject(subject: str) -> str:
    """Member subjects compare as numbers elsewhere ("007" is member 7); so here."""
    if subject.isascii() and subject.isdigit():
        return str(int(subject))
    return subject


class RevocationStore:
    """The Redis side: write a revocation, read them all back."""

    def __init__(self, redis: Redis, *, max_ttl_s: float, timeout: float = _TIMEOUT_S) -> None:
        self._redis = redis
        self._max_ttl_s = max_ttl_s
        self._timeout = timeout
        self._revoke = redis.register_script(_REVOKE)

    @property
    def max_ttl_s(self) -> float:
        return self._max_ttl_s

    async def revoke_token(self, token_id: str, expires_at: float, *, now: float) -> Revocation:
        """Refuse the token `token_id` until `expires_at` (its own expiry)."""
        revocation = Revocation("token", token_id, expires_at)
        await self._write(TOKENS_KEY, revocation, keep=0.0, now=now)
        return revocation

    async def revoke_subject(self, subject: str, issued_before: float, *, now: float) -> Revocation:
        """Refuse every token of `subject` issued before `issued_before`."""
        revocation = Revocation("subject", canonical_subject(subject), issued_before)
        await self._write(SUBJECTS_KEY, revocation, keep=self._max_ttl_s, now=now)
        return revocation

    async def load(self, *, now: float) -> list[Revocation]:
        """Every revocation still in force, in one round trip."""
        try:
            async with asyncio.timeout(self._timeout):
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.zrangebyscore(TOKENS_KEY, now, "+inf", withscores=True)
                    pipe.zrangebyscore(SUBJECTS_KEY, now - self._max_ttl_s, "+inf", withscores=True)
                    tokens, subjects = await pipe.execute()
        except (TimeoutError, RedisError, OSError) as exc:
            raise RevocationStoreError(f"could not read revocations from Redis: {exc}") from exc
        found = [Revocation("token", _text(member), float(score)) for member, score in tokens]
        found += [Revocation("subject", _text(member), float(score)) for member, score in subjects]
        return found

    async def _write(self, key: str, revocation: Revocation, *, keep: float, now: float) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._revoke(
                    keys=(key,),
                    args=(
                        revocation.id,
                        repr(revocation.at),
                        repr(keep),
                        repr(now),
                        CHANNEL,
                        _encode(revocation),
                    ),
                )
        except (TimeoutError, RedisError, OSError) as exc:
            raise RevocationStoreError(f"could not store the revocation in Redis: {exc}") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RevocationList:
    """This process's copy of every revocation: the codec's `RevocationCheck`, the
    pub/sub listener that keeps it current, and the way this process revokes.

    `start`/`close` run with the gateway's lifespan.
    """

    def __init__(
        self,
        store: RevocationStore,
        listener_client: Redis,
        *,
        fail_closed: bool = False,
        clock: Clock | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._listener_client = listener_client
        self._fail_closed = fail_closed
        self._clock = clock or SystemClock()
        self._on_close = on_close
        self._tokens: dict[str, float] = {}  # token id -> its expiry
        self._subjects: dict[str, float] = {}  # subject -> tokens issued before this are refused
        self._hub: RedisInvalidationHub | None = None
        self._subscribed = False
        self._live = False
        self._loader: asyncio.Task[None] | None = None
        self._next_prune = -math.inf
        self.refused = 0
        self.reloads = 0
        self.reload_errors = 0

    # --- the hot path ------------------------------------------------------

    def is_revoked(self, token: VerifiedToken) -> bool:
        if self._tokens and token.token_id in self._tokens:
            self.refused += 1
            return True
        subjects = self._subjects
        if subjects:
            subject = token.principal.subject
            cutoff = subjects.get(subject)
            if cutoff is None and subject[:1] == "0":  # only "0…" spellings differ from the stored form
                cutoff = subjects.get(canonical_subject(subject))
            # A token that does not say when it was issued may be older than anything.
            if cutoff is not None and (token.issued_at is None or token.issued_at < cutoff):
                self.refused += 1
                return True
        return False

    @property
    def live(self) -> bool:
        """Whether the list is current: subscribed, and loaded since."""
        return self._live

    @property
    def unavailable(self) -> bool:
        """Whether authenticated requests must be refused (fail-closed and not live)."""
        return self._fail_closed and not self._live

    def __len__(self) -> int:
        return len(self._tokens) + len(self._subjects)

    # --- revoking ------------------------------------------------------------

    async def revoke_token(self, token_id: str, expires_at: float) -> Revocation:
        """Store and announce; this process refuses the token as soon as this returns."""
        revocation = await self._store.revoke_token(token_id, expires_at, now=self._clock.time())
        self._apply(revocation)
        return revocation

    async def revoke_subject(self, subject: str, issued_before: float) -> Revocation:
        revocation = await self._store.revoke_subject(subject, issued_before, now=self._clock.time())
        self._apply(revocation)
        return revocation

    def _apply(self, revocation: Revocation) -> None:
        now = self._clock.time()
        if revocation.kind == "token":
            if revocation.at > now:
                self._tokens[revocation.id] = max(revocation.at, self._tokens.get(revocation.id, -math.inf))
        else:
            subject = canonical_subject(revocation.id)
            self._subjects[subject] = max(revocation.at, self._subjects.get(subject, -math.inf))
        if now >= self._next_prune:
            self._prune(now)

    def _prune(self, now: float) -> None:
        """Forget what can no longer matter: tokens past expiry (the codec refuses them
        anyway) and subject cut-offs older than the longest token lifetime."""
        self._next_prune = now + _PRUNE_EVERY_S
        self._tokens = {key: at for key, at in self._tokens.items() if at > now}
        horizon = now - self._store.max_ttl_s
        self._subjects = {key: at for key, at in self._subjects.items() if at > horizon}

    # --- keeping current (InvalidationListener, called by the hub) -------------

    def invalidated(self, key: str) -> None:
        try:
            revocation = _decode(key)
        except msgspec.DecodeError:
            log.warning("ignoring a malformed revocation message: %r", key[:200])
            return
        self._apply(revocation)

    def reset(self, *, live: bool) -> None:
        # Messages may have been missed. Nothing is forgotten (the list only grows);
        # once subscribed again, the whole list is loaded and merged.
        if not live and self._live and self._hub is not None:  # not when closing
            log.warning("token revocations not flowing; applying the last known list until Redis is back")
        self._subscribed = live
        self._live = False
        if self._loader is not None:
            self._loader.cancel()
            self._loader = None
        if live:
            self._loader = asyncio.get_running_loop().create_task(self._load(), name="revocations-load")

    async def _load(self) -> None:
        delay = _RELOAD_BACKOFF_S[0]
        while self._subscribed:
            try:
                found = await self._store.load(now=self._clock.time())
            except RevocationStoreError as exc:
                self.reload_errors += 1
                log.warning("%s; retrying", exc)
                await self._clock.sleep(delay)
                delay = min(delay * 2, _RELOAD_BACKOFF_S[1])
                continue
            for revocation in found:
                self._apply(revocation)
            self.reloads += 1
            self._live = True
            log.info("token revocations current (%d in force)", len(self))
            return

    # --- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        # Returns at once: until the subscription is confirmed and the list loaded,
        # requests are checked against what is known (nothing, at first).
        self._hub = RedisInvalidationHub(self._listener_client, clock=self._clock)
        await self._hub.subscribe(CHANNEL, self)

    async def close(self) -> None:
        hub, self._hub = self._hub, None
        if hub is not None:
            await hub.aclose()
        loader, self._loader = self._loader, None
        if loader is not None:
            loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loader
        if self._on_close is not None:
            await self._on_close()


class RevocationCollector(Collector):
    """The list's state and counters, read at scrape time."""

    def __init__(self, revocations: RevocationList) -> None:
        self._revocations = revocations

    def collect(self) -> Iterator[Metric]:
        r = self._revocations
        live = GaugeMetricFamily(
            "bookvault_gateway_revocations_live",
            "1 when the revocation list is current (subscribed and loaded)",
        )
        live.add_metric([], 1.0 if r.live else 0.0)
        known = GaugeMetricFamily(
            "bookvault_gateway_revocations", "Revocations in force known to this process"
        )
        known.add_metric([], float(len(r)))
        refused = CounterMetricFamily(
            "bookvault_gateway_revoked_tokens_refused", "Requests refused: token revoked"
        )
        refused.add_metric([], float(r.refused))
        reloads = CounterMetricFamily("bookvault_gateway_revocation_reloads", "Whole-list loads from Redis")
        reloads.add_metric([], float(r.reloads))
        errors = CounterMetricFamily(
            "bookvault_gateway_revocation_reload_errors", "Whole-list loads that failed (retried)"
        )
        errors.add_metric([], float(r.reload_errors))
        yield from (live, known, refused, reloads, errors)


def revocation_list(settings: Settings, *, clock: Clock | None = None) -> RevocationList | None:
    """The gateway's revocation list; None (with a warning) when no Redis is configured."""
    if settings.redis_url is None:
        log.warning("no Redis configured: tokens cannot be revoked")
        return None
    commands = fail_fast(settings.redis_url, _TIMEOUT_S)
    # Pub/sub waits for messages as long as it likes; only connecting must be quick.
    listener: Redis = Redis.from_url(settings.redis_url, socket_connect_timeout=_TIMEOUT_S)

    async def close_clients() -> None:
        await commands.aclose()
        await listener.aclose()

    store = RevocationStore(commands, max_ttl_s=settings.jwt_max_ttl_s)
    return RevocationList(
        store, listener, fail_closed=settings.revocation_fail_closed, clock=clock, on_close=close_clients
    )
