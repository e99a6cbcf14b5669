import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.patterns.resilience import (
    BreakerConfig,
    BreakerEvent,
    BreakerRegistry,
    BreakerState,
    BreakerStateChanged,
)


async def fail() -> None:
    raise ConnectionError("down")


def test_one_breaker_per_name_with_its_configuration(clock: FakeClock) -> None:
    strict = BreakerConfig(failure_rate_threshold=25.0)
    registry = BreakerRegistry(
        BreakerConfig(wait_duration_in_open_state=30.0), overrides={"payments": strict}, clock=clock
    )

    catalog = registry.get("catalog")
    assert registry.get("catalog") is catalog
    assert catalog.name == "catalog"
    assert catalog.config.wait_duration_in_open_state == 30.0
    assert registry.get("payments").config is strict
    assert registry.config_for("accounts") is registry.default
    assert "catalog" in registry
    assert "accounts" not in registry
    assert len(registry) == 2
    assert [breaker.name for breaker in registry] == ["catalog", "payments"]


def test_defaults_to_the_seed_configuration() -> None:
    assert BreakerRegistry().default == BreakerConfig()


async def test_metrics_cover_every_breaker(clock: FakeClock) -> None:
    registry = BreakerRegistry(clock=clock)
    for _ in range(5):
        with pytest.raises(ConnectionError):
            await registry.get("catalog").call(fail)
    registry.get("accounts")
    states = {m.name: m.state for m in registry.metrics()}
    assert states == {"catalog": BreakerState.OPEN, "accounts": BreakerState.CLOSED}


async def test_a_registry_listener_hears_breakers_made_before_and_after(clock: FakeClock) -> None:
    registry = BreakerRegistry(clock=clock)
    early = registry.get("catalog")
    opened: list[str] = []

    def on_event(event: BreakerEvent) -> None:
        if isinstance(event, BreakerStateChanged) and event.to_state is BreakerState.OPEN:
            opened.append(event.name)

    registry.add_listener(on_event)
    late = registry.get("accounts")
    early.transition_to_open()
    late.transition_to_open()
    assert opened == ["catalog", "accounts"]


def test_remove_forgets_a_breaker(clock: FakeClock) -> None:
    registry = BreakerRegistry(clock=clock)
    first = registry.get("catalog:10.0.0.7")
    registry.remove("catalog:10.0.0.7")
    assert "catalog:10.0.0.7" not in registry
    assert registry.get("catalog:10.0.0.7") is not first
    with pytest.raises(KeyError, match="no circuit breaker named 'nope'"):
        registry.remove("nope")
