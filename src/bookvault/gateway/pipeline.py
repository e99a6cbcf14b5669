"""The pattern stages of the gateway, in the one order they run.

Each pattern contributes at most one stage here, present only when its switch
is on. A stage that owns resources (a Redis client, a background task) also
implements `ManagedStage`; the gateway starts it with the ASGI lifespan and
closes it on shutdown, in reverse order.

Order, outermost first, and why:
  1. rate limiting — refuse excess traffic before it costs anything else;
  2. response cache — a hit answers without the upstream;
  3. compression — encodes whatever comes back, cached or fresh.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from bookvault.config import Settings
from bookvault.gateway.exchange import Stage

__all__ = ["ManagedStage", "pattern_stages"]


@runtime_checkable
class ManagedStage(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...


def pattern_stages(settings: Settings) -> tuple[Stage, ...]:
    """The stages the switched-on patterns add, outermost first."""
    stages: list[Stage] = []
    return tuple(stages)
