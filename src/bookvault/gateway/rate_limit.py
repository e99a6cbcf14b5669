"""The gateway's rate limiter stage (switch `rate_limit`).

Each request is charged one token on its policy (see `limit_policies`) for its
caller, in Redis when `redis_url` is set: one EVALSHA per decision, so every
gateway process shares one limit. Answers:

- allowed: the upstream's reply, with `RateLimit-Policy` and `RateLimit`;
- refused: 429, `Retry-After`, both fields, and an RFC 9457 problem body of
  type quota-exceeded naming the violated policy;
- no caller identity (empty key): `rate_limit_empty_key_status`.

When Redis fails or does not answer within `rate_limit_timeout_s`, a policy
fails open to a local in-process limiter of the same size (each process then
limits on its own), or, if named in `rate_limit_fail_closed`, refuses with 503.
After a failure Redis is left alone for a second, so an outage costs one
timeout per second rather than one per request. In shadow mode
(`rate_limit_shadow`) nothing is refused: decisions are made and counted only.

Counters are read from the limiters when scraped (`collector`), so the hot
path pays nothing for metrics.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from bookvault.config import SERVICE_NAMES, Settings
from bookvault.gateway.exchange import Exchange, Handler, Reply, problem_reply
from bookvault.gateway.limit_policies import PAYMENTS, PolicySpec, client_key, is_payment, policy_specs
from bookvault.logs import get_logger
from bookvault.patterns.clock import Clock
from bookvault.patterns.pipelined_redis import PipelinedRedis
from bookvault.patterns.ratelimit import (
    Backend,
    Decision,
    MemoryBackend,
    OnFailure,
    RateLimiter,
    RedisBackend,
    StorageError,
    TokenBucket,
    format_ratelimit,
    format_ratelimit_policy,
    format_retry_after,
    quota_exceeded_problem,
)
from bookvault.web.problems import PROBLEM_CONTENT_TYPE

__all__ = ["RateLimitCollector", "RateLimitStage"]

log = get_logger(__name__)

_POLICY = b"ratelimit-policy"
_RATELIMIT = b"ratelimit"
_RETRY_AFTER = b"retry-after"
_PROBLEM_TYPE = (b"content-type", PROBLEM_CONTENT_TYPE.encode("ascii"))
_EMPTY_KEY = "the request carries no identity (member or client address) to rate-limit it by"
_FAIL_CLOSED = "the rate-limit storage is unavailable and this route does not proceed without it"


class _Policy:
    """One policy's limiter and the parts of its answers known in advance."""

    __slots__ = ("empty_keys", "limiter", "logged_failures", "policy_field")

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self.policy_field = (_POLICY, format_ratelimit_policy(limiter.policy).encode("ascii"))
        self.empty_keys = 0
        self.logged_failures = 0

    def note_failure(self) -> None:
        """Log each storage failure once. The limiter leaves the storage alone for a
        second after one, so this logs at most about once a second per policy."""
        stats = self.limiter.stats
        if stats.failures != self.logged_failures:
            self.logged_failures = stats.failures
            log.warning(
                "rate-limit storage failed; the failure policy decides for a while",
                policy=self.limiter.policy.name,
                on_failure=self.limiter.on_failure.value,
                cause=str(self.limiter.last_error),
            )


class RateLimitStage:
    """The pipeline stage. Owns its Redis client: `start()` loads the scripts,
    `close()` closes the connections."""

    __slots__ = ("_by_route", "_client", "_empty_key_status", "_payments", "_redis", "policies")

    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        """`clock` drives the local limiters (memory backend and Redis fallback); tests pass a FakeClock."""
        specs = policy_specs(settings, SERVICE_NAMES)
        self._client: PipelinedRedis | None = None
        self._redis: RedisBackend | None = None
        backend: Backend
        if settings.redis_url:
            # The pipelined client: a decision on every request costs a third of
            # redis-py's CPU (BENCHMARKS.md). No retries inside it: the limiter
            # bounds each call and applies its policy.
            self._client = PipelinedRedis.from_url(
                settings.redis_url, connect_timeout_s=settings.rate_limit_timeout_s
            )
            self._redis = RedisBackend(self._client)
            backend = self._redis
        else:
            backend = MemoryBackend(clock=clock)

        def limiter(spec: PolicySpec) -> RateLimiter:
            return RateLimiter(
                spec.name,
                TokenBucket(spec.replenish_rate, spec.burst_capacity),
                backend,
                timeout=settings.rate_limit_timeout_s,
                on_failure=OnFailure.DENY if spec.fail_closed else OnFailure.FALLBACK,
                fallback=MemoryBackend(clock=clock),
                shadow=settings.rate_limit_shadow,
                clock=clock,
            )

        self.policies = {name: _Policy(limiter(spec)) for name, spec in specs.items()}
        self._payments = self.policies[PAYMENTS]
        self._by_route = {name: self.policies[name] for name in SERVICE_NAMES}
        self._empty_key_status = settings.rate_limit_empty_key_status

    @property
    def collector(self) -> RateLimitCollector:
        """Prometheus counters for every policy, read at scrape time."""
        return RateLimitCollector(self)

    async def start(self) -> None:
        if self._redis is None:
            log.warning("rate limits are per process: no redis_url is configured")
            return
        try:
            await self._redis.load_scripts()
        except StorageError as exc:
            # Not fatal: each policy's failure policy applies until Redis answers.
            log.warning("rate-limit scripts not loaded; Redis unavailable at startup", cause=str(exc))

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __call__(self, exchange: Exchange, call_next: Handler) -> Reply:
        policy = (
            self._payments
            if is_payment(exchange.method, exchange.path)
            else self._by_route[exchange.route.service]
        )
        key = client_key(exchange)
        if not key:
            policy.empty_keys += 1
            return problem_reply(self._empty_key_status, _EMPTY_KEY)
        decision = await policy.limiter.acquire(key)
        if decision.degraded:
            policy.note_failure()
        if decision.allowed:
            reply = await call_next(exchange)
            reply.headers.append(policy.policy_field)
            reply.headers.append((_RATELIMIT, format_ratelimit(decision).encode("ascii")))
            return reply
        if decision.degraded and policy.limiter.on_failure is OnFailure.DENY:
            return problem_reply(503, _FAIL_CLOSED, {"Retry-After": format_retry_after(decision.retry_after)})
        return _refusal(policy, decision)


def _refusal(policy: _Policy, decision: Decision) -> Reply:
    problem = quota_exceeded_problem(decision)
    problem["detail"] = f"too many requests under policy {decision.policy.name!r}; retry later"
    body = json.dumps(problem, separators=(",", ":")).encode()
    headers = [
        _PROBLEM_TYPE,
        (b"content-length", str(len(body)).encode("ascii")),
        policy.policy_field,
        (_RATELIMIT, format_ratelimit(decision).encode("ascii")),
        (_RETRY_AFTER, format_retry_after(decision.retry_after).encode("ascii")),
    ]
    return Reply(429, headers, body)


class RateLimitCollector(Collector):
    """`bookvault_ratelimit_*` counters, by policy.

    decisions_total{policy,decision}: allowed, denied, shadow_denied (shadow mode:
    would have been refused, let through), empty_key (refused, no identity);
    storage_errors_total{policy,kind}: error, timeout;
    degraded_total{policy}: decisions the failure policy made instead of Redis.
    """

    def __init__(self, stage: RateLimitStage) -> None:
        self._stage = stage

    def collect(self) -> Iterator[CounterMetricFamily]:
        decisions = CounterMetricFamily(
            "bookvault_ratelimit_decisions",
            "Rate-limit decisions by policy and outcome",
            labels=["policy", "decision"],
        )
        errors = CounterMetricFamily(
            "bookvault_ratelimit_storage_errors",
            "Rate-limit storage calls that failed or timed out, by policy",
            labels=["policy", "kind"],
        )
        degraded = CounterMetricFamily(
            "bookvault_ratelimit_degraded",
            "Decisions made by the failure policy because the storage could not decide",
            labels=["policy"],
        )
        for name, policy in self._stage.policies.items():
            stats = policy.limiter.stats
            decisions.add_metric([name, "allowed"], stats.allowed - stats.would_deny)
            decisions.add_metric([name, "denied"], stats.denied)
            decisions.add_metric([name, "shadow_denied"], stats.would_deny)
            decisions.add_metric([name, "empty_key"], policy.empty_keys)
            errors.add_metric([name, "error"], stats.errors)
            errors.add_metric([name, "timeout"], stats.timeouts)
            degraded.add_metric([name], stats.degraded)
        yield decisions
        yield errors
        yield degraded
