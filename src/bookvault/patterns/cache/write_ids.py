"""Write-behind write ids are Redis Stream ids, "<milliseconds>-<sequence>"; they
increase with every enqueue on a stream, so they order writes to the same key."""

from __future__ import annotations

__all__ = ["write_id_order"]


def write_id_order(write_id: str) -> tuple[int, int]:
    """A sortable form of a stream id: later writes compare greater."""
    millis, _, sequence = write_id.partition("-")
    return int(millis), int(sequence or 0)
