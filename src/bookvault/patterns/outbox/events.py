"""An event as it travels from the outbox to consumers."""

from __future__ import annotations

import dataclasses

__all__ = ["Event"]


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """`event_id` is unique and stable across redeliveries (consumers dedup on it);
    `payload` is JSON text."""

    event_id: str
    topic: str
    event_type: str
    aggregate_id: str
    payload: str
    position: int

    def fields(self) -> dict[str, str]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "aggregate_id": self.aggregate_id,
            "payload": self.payload,
            "position": str(self.position),
        }

    @classmethod
    def from_fields(cls, topic: str, fields: dict[str, str]) -> Event:
        return cls(
            event_id=fields["event_id"],
            topic=topic,
            event_type=fields["event_type"],
            aggregate_id=fields["aggregate_id"],
            payload=fields["payload"],
            position=int(fields["position"]),
        )
