"""`Cache-Control` (RFC 9111 §5.2, RFC 5861) read into the directives a shared cache acts on."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

__all__ = ["CacheControl", "parse_cache_control"]


@dataclasses.dataclass(frozen=True, slots=True)
class CacheControl:
    no_store: bool = False
    no_cache: bool = False
    private: bool = False
    public: bool = False
    must_revalidate: bool = False  # also set by proxy-revalidate: no stale serving
    no_transform: bool = False
    max_age: int | None = None
    s_maxage: int | None = None
    stale_while_revalidate: int = 0
    stale_if_error: int = 0

    @property
    def present(self) -> bool:
        return self != _EMPTY


_EMPTY = CacheControl()


def _seconds(value: str) -> int | None:
    """A delta-seconds value; None when malformed (the directive is then ignored,
    except max-age / s-maxage, which the caller treats as "stale at once")."""
    text = value.strip().strip('"')
    if not text.isascii() or not text.isdigit():
        return None
    return min(int(text), 2**31 - 1)


def parse_cache_control(values: Iterable[str]) -> CacheControl:
    """Directives from every `Cache-Control` field value (names are case-insensitive)."""
    flags: dict[str, bool] = {}
    numbers: dict[str, int] = {}
    for value in values:
        for item in value.split(","):
            name, has_arg, arg = item.partition("=")
            name = name.strip().lower()
            if not name:
                continue
            if name in ("max-age", "s-maxage", "stale-while-revalidate", "stale-if-error"):
                seconds = _seconds(arg) if has_arg else None
                if seconds is None:
                    if name in ("max-age", "s-maxage"):
                        numbers[name] = 0  # RFC 9111 §4.2.1: an invalid freshness means stale
                    continue
                # Given twice: the more conservative (shorter) value.
                numbers[name] = min(seconds, numbers.get(name, seconds))
            elif name == "proxy-revalidate":
                flags["must-revalidate"] = True
            else:
                # A qualified `private="Set-Cookie"` or `no-cache="x"` is treated as the
                # unqualified directive: stricter, and never wrong for a shared cache.
                flags[name] = True
    return CacheControl(
        no_store=flags.get("no-store", False),
        no_cache=flags.get("no-cache", False),
        private=flags.get("private", False),
        public=flags.get("public", False),
        must_revalidate=flags.get("must-revalidate", False),
        no_transform=flags.get("no-transform", False),
        max_age=numbers.get("max-age"),
        s_maxage=numbers.get("s-maxage"),
        stale_while_revalidate=numbers.get("stale-while-revalidate", 0),
        stale_if_error=numbers.get("stale-if-error", 0),
    )
