"""PostgreSQL WAL positions (pg_lsn, written "16/B374D848") as comparable integers."""

from __future__ import annotations

__all__ = ["format_lsn", "parse_lsn"]


def parse_lsn(text: str) -> int:
    high, sep, low = text.strip().partition("/")
    if not sep or not high or not low:
        raise ValueError(f"not a WAL position: {text!r}")
    try:
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        raise ValueError(f"not a WAL position: {text!r}") from None


def format_lsn(value: int) -> str:
    if value < 0:
        raise ValueError("a WAL position cannot be negative")
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"
