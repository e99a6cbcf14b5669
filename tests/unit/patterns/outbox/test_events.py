"""Outbox events on the wire, and the relay's refusal of nonsense settings."""

from __future__ import annotations

import pytest

from bookvault.patterns.outbox import Event, RedisStreamsPublisher, Relay


def test_an_event_survives_the_trip_through_stream_fields() -> None:
    event = Event(
        "3f1c2b9e-6d7a-4e1f-9a0b-1c2d3e4f5a6b", "loans", "loan.returned", "17", '{"fee_cents":150}', 42
    )
    fields = event.fields()
    assert all(isinstance(value, str) for value in fields.values())
    assert Event.from_fields("loans", fields) == event


def test_streams_are_named_by_prefix_and_topic() -> None:
    assert RedisStreamsPublisher(object(), prefix="events:").stream("accounts") == "events:accounts"


def test_a_batch_holds_at_least_one_event() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Relay(object(), RedisStreamsPublisher(object()), batch_size=0)
