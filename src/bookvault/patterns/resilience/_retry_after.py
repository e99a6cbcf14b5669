"""Reading a dependency's "come back later" hint.

`Retry` asks its `retry_after` extractor for a number of seconds on each failure.
The default, `retry_after_attribute`, reads a `retry_after` attribute, which
`CallRejected` errors carry and an HTTP client adapter can set from the response
header with `parse_retry_after`.
"""

from __future__ import annotations

import email.utils
import math
import time
from datetime import UTC, timedelta

__all__ = ["parse_retry_after", "retry_after_attribute"]


def retry_after_attribute(failure: object) -> float | None:
    """Seconds from `failure.retry_after` (a number or a timedelta), or None."""
    value = getattr(failure, "retry_after", None)
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return float(value)


def parse_retry_after(value: str, *, now: float | None = None) -> float | None:
    """Seconds to wait from an HTTP `Retry-After` value (RFC 9110 §10.2.3).

    Accepts delta-seconds ("120") or an HTTP-date, measured against `now` (wall-clock
    seconds, default `time.time()`). Returns None for anything unparseable, since a
    malformed hint should not stop a retry that is otherwise allowed.
    """
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        # An HTTP-date is always GMT; "-0000" parses as naive.
        when = when.replace(tzinfo=UTC)
    wall = now if now is not None else time.time()
    return max(0.0, when.timestamp() - wall)
