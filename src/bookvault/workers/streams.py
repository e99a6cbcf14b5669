"""The streams and consumer groups the workers read, and how far behind they are.

Shared by the worker processes, the supervisor that scales them on lag, and
`bookvault status`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = [
    "ACCOUNTS_STREAM",
    "GROUPS",
    "LATE_FEES",
    "LOANS_STREAM",
    "OUTBOX_SERVICES",
    "SUMMARIES",
    "StreamGroup",
    "group_lag",
]

# RedisStreamsPublisher's default prefix + each service's outbox topic.
LOANS_STREAM = "events:loans"
ACCOUNTS_STREAM = "events:accounts"
# Services whose database holds an outbox; `status` reports each one's backlog.
OUTBOX_SERVICES: tuple[str, ...] = ("borrowing", "accounts")


@dataclasses.dataclass(frozen=True, slots=True)
class StreamGroup:
    stream: str
    topic: str
    group: str


LATE_FEES = StreamGroup(LOANS_STREAM, "loans", "late-fees")
SUMMARIES = StreamGroup(ACCOUNTS_STREAM, "accounts", "summaries")
# Every consumer group the workers run: the supervisor scales on the largest lag.
GROUPS: tuple[StreamGroup, ...] = (LATE_FEES, SUMMARIES)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def group_lag(groups_info: list[dict[Any, Any]], group: str) -> tuple[int, int] | None:
    """(entries not yet delivered to `group`, delivered and not acked) from an
    XINFO GROUPS answer; None when the group does not exist yet."""
    for info in groups_info:
        fields = {_text(k): v for k, v in info.items()}
        if _text(fields["name"]) == group:
            # Redis reports lag as nil when it cannot tell (after trimming deleted entries).
            return int(fields.get("lag") or 0), int(fields["pending"])
    return None
