"""The pattern stages of the gateway, in the one order they run.

Each pattern contributes at most one stage here, present only when its switch
is on. A stage that owns resources (a Redis client, a background task) also
implements `ManagedStage`; the gateway starts it with the ASGI lifespan and
closes it on shutdown, in reverse order. A stage with counters implements
`MeteredStage`; the gateway registers its collector on `/metrics`.

Order, outermost first, and why:
  1. rate limiting — refuse excess traffic before it costs anything else;
  2. response cache — a hit answers without the upstream;
  3. compression — encodes whatever comes back, cached or fresh.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from prometheus_client.registry import Collector

from bookvault.config import Settings
from bookvault.gateway.compression import Compression
from bookvault.gateway.exchange import Stage
from bookvault.gateway.rate_limit import RateLimitStage
from bookvault.gateway.response_cache import response_cache_stage

__all__ = ["ManagedStage", "MeteredStage", "pattern_stages"]


@runtime_checkable
class ManagedStage(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class MeteredStage(Protocol):
    @property
    def collector(self) -> Collector: ...


def pattern_stages(settings: Settings) -> tuple[Stage, ...]:
    """The stages the switched-on patterns add, outermost first."""
    stages: list[Stage] = []
    if settings.pattern_on("rate_limit"):
        stages.append(RateLimitStage(settings))
    if settings.pattern_on("gateway_cache") and (cache := response_cache_stage(settings)) is not None:
        stages.append(cache)
    if settings.pattern_on("compression"):
        stages.append(Compression())
    return tuple(stages)
