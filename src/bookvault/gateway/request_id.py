"""`X-Request-Id`: keep the caller's when it is a sane token, else make one.

A caller's id ends up in logs and upstream headers, so only short tokens of
`[A-Za-z0-9._-]` are trusted; anything else is replaced rather than cleaned.
"""

from __future__ import annotations

import os
import re

__all__ = ["MAX_LENGTH", "new_request_id", "request_id_for"]

MAX_LENGTH = 128
_SANE = re.compile(rb"[A-Za-z0-9._-]{1,%d}" % MAX_LENGTH)


def new_request_id() -> bytes:
    # 128 random bits as hex: unique across gateway processes without coordination.
    return os.urandom(16).hex().encode("ascii")


def request_id_for(supplied: bytes | None) -> bytes:
    """The id this request goes by: the caller's if sane, else a new one."""
    if supplied is not None and _SANE.fullmatch(supplied):
        return supplied
    return new_request_id()
