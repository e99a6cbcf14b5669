"""HTTP fields for rate limits: `RateLimit-Policy`, `RateLimit`, `Retry-After`.

Implements draft-ietf-httpapi-ratelimit-headers-11 (May 2026; the field syntax
is the same as in -10). Both fields are Structured Field Lists (RFC 9651) of
items whose value is the policy name as an sf-string:

    RateLimit-Policy: "member";q=200;w=2
    RateLimit: "member";r=42;t=1

`q` is the quota and `w` its window in whole seconds; `r` is the quota
still available and `t` the effective window: the seconds within which no
more than `r` may be used. For an allowed request `t` is the time until the
key is back to its full quota; for a refused one it is the time until a request
would pass, the same moment as `Retry-After`, which the draft says must not
come earlier than the end of the effective window.

Sub-second windows are rounded up to a whole second, as the draft requires,
which under-states a sub-second policy's rate: clients err on the slow side.

The parsers check what a client would see, and let tests hold our output to
the draft.
"""

from __future__ import annotations

import base64
import binascii
import math
import string
from collections.abc import Mapping

from bookvault.patterns.ratelimit.decision import Decision, RatePolicy
from bookvault.patterns.ratelimit.errors import MalformedField

__all__ = [
    "QUOTA_EXCEEDED",
    "BareItem",
    "Token",
    "format_ratelimit",
    "format_ratelimit_policy",
    "format_retry_after",
    "parse_list",
    "parse_ratelimit",
    "parse_ratelimit_policy",
    "quota_exceeded_problem",
    "rate_limit_headers",
]

# The draft's problem type for a refused request (RFC 9457 problem details).
QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"

# Float noise must not round 2.0000000000000004 s up to 3.
_NOISE = 1e-9


def _whole_seconds(seconds: float) -> int:
    return max(0, math.ceil(seconds - _NOISE))


def format_ratelimit_policy(*policies: RatePolicy) -> str:
    """`"name";q=<quota>;w=<window>` for each policy. The value depends only on
    the policies, so callers can compute it once."""
    if not policies:
        raise ValueError("RateLimit-Policy needs at least one policy")
    return ", ".join(f'"{p.name}";q={p.quota};w={max(1, _whole_seconds(p.window))}' for p in policies)


def format_ratelimit(*decisions: Decision) -> str:
    """`"name";r=<available>;t=<effective window>` for each decision."""
    if not decisions:
        raise ValueError("RateLimit needs at least one decision")
    return ", ".join(
        f'"{d.policy.name}";r={d.remaining};t={_whole_seconds(d.reset_after if d.allowed else d.retry_after)}'
        for d in decisions
    )


def format_retry_after(seconds: float) -> str:
    """Retry-After as delay-seconds, rounded up: a client that waits that long is not early."""
    return str(_whole_seconds(seconds))


def rate_limit_headers(decision: Decision) -> list[tuple[str, str]]:
    """The response fields for one decision; Retry-After only when it refuses."""
    fields = [
        ("RateLimit-Policy", format_ratelimit_policy(decision.policy)),
        ("RateLimit", format_ratelimit(decision)),
    ]
    if not decision.allowed:
        fields.append(("Retry-After", format_retry_after(decision.retry_after)))
    return fields


def quota_exceeded_problem(*decisions: Decision) -> dict[str, object]:
    """An RFC 9457 problem body for a 429, with the draft's `violated-policies` member."""
    return {
        "type": QUOTA_EXCEEDED,
        "title": "Request cannot be satisfied as assigned quota has been exceeded",
        "status": 429,
        "violated-policies": [d.policy.name for d in decisions if not d.allowed],
    }


# --- parsing: RFC 9651 Lists of Items -----------------------------------------


class Token(str):
    """An sf-token, kept apart from an sf-string (the draft requires a string)."""

    __slots__ = ()


BareItem = int | float | str | bytes | bool
_TOKEN_START = frozenset(string.ascii_letters + "*")
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + ":/!#$%&'*+-.^_`|~")
_KEY_START = frozenset(string.ascii_lowercase + "*")
_KEY_CHARS = frozenset(string.ascii_lowercase + string.digits + "_-.*")
_BASE64 = frozenset(string.ascii_letters + string.digits + "+/=")


class _Parser:
    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> MalformedField:
        return MalformedField(f"{what} at position {self.pos} of {self.text!r}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip(self, chars: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def parse_list(self) -> list[tuple[BareItem, dict[str, BareItem]]]:
        members: list[tuple[BareItem, dict[str, BareItem]]] = []
        self.skip(" ")
        while self.pos < len(self.text):
            if self.peek() == "(":
                raise self.fail("inner lists are not allowed in RateLimit fields")
            members.append((self.bare_item(), self.parameters()))
            self.skip(" \t")
            if self.pos == len(self.text):
                return members
            if self.peek() != ",":
                raise self.fail("expected ',' between list members")
            self.pos += 1
            self.skip(" \t")
            if self.pos == len(self.text):
                raise self.fail("trailing comma")
        self.skip(" ")
        return members

    def parameters(self) -> dict[str, BareItem]:
        params: dict[str, BareItem] = {}
        while self.peek() == ";":
            self.pos += 1
            self.skip(" ")
            key = self.key()
            value: BareItem = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            params[key] = value
        return params

    def key(self) -> str:
        start = self.pos
        if not self.peek() or self.peek() not in _KEY_START:
            raise self.fail("expected a parameter key")
        while self.peek() and self.peek() in _KEY_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def bare_item(self) -> BareItem:
        c = self.peek()
        if c == "-" or c.isdigit():
            return self.number()
        if c == '"':
            return self.sf_string()
        if c == ":":
            return self.byte_sequence()
        if c == "?":
            return self.boolean()
        if c and c in _TOKEN_START:
            start = self.pos
            while self.peek() and self.peek() in _TOKEN_CHARS:
                self.pos += 1
            return Token(self.text[start : self.pos])
        raise self.fail("expected an item")

    def number(self) -> int | float:
        start = self.pos
        if self.peek() == "-":
            self.pos += 1
        if not self.peek().isdigit():
            raise self.fail("expected a digit")
        while self.peek().isdigit() or (self.peek() == "." and "." not in self.text[start : self.pos]):
            self.pos += 1
        raw = self.text[start : self.pos]
        digits = raw.lstrip("-")
        if "." not in digits:
            if len(digits) > 15:
                raise self.fail("integer longer than 15 digits")
            return int(raw)
        whole, _, fraction = digits.partition(".")
        if len(whole) > 12 or not 1 <= len(fraction) <= 3:
            raise self.fail("malformed decimal")
        return float(raw)

    def sf_string(self) -> str:
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            c = self.text[self.pos]
            self.pos += 1
            if c == "\\":
                escaped = self.peek()
                if escaped not in ('"', "\\") or not escaped:
                    raise self.fail("bad escape in string")
                out.append(escaped)
                self.pos += 1
            elif c == '"':
                return "".join(out)
            elif not " " <= c <= "~":
                raise self.fail("non-printable character in string")
            else:
                out.append(c)
        raise self.fail("unterminated string")

    def byte_sequence(self) -> bytes:
        end = self.text.find(":", self.pos + 1)
        if end < 0:
            raise self.fail("unterminated byte sequence")
        encoded = self.text[self.pos + 1 : end]
        if not set(encoded) <= _BASE64:
            raise self.fail("bad base64 in byte sequence")
        self.pos = end + 1
        try:
            return base64.b64decode(encoded + "=" * (-len(encoded) % 4))
        except binascii.Error as exc:
            raise self.fail("bad base64 in byte sequence") from exc

    def boolean(self) -> bool:
        self.pos += 1
        c = self.peek()
        if c not in ("0", "1") or not c:
            raise self.fail("expected ?0 or ?1")
        self.pos += 1
        return c == "1"


def parse_list(value: str) -> list[tuple[BareItem, dict[str, BareItem]]]:
    """Parse a Structured Field List of Items (RFC 9651, section 4.2.1)."""
    return _Parser(value).parse_list()


def _named(
    value: str, field: str, integers: Mapping[str, int], required: str
) -> dict[str, dict[str, BareItem]]:
    """Members by name, checking the draft's rules: a String name, the required
    parameter present, and the named parameters non-negative Integers of at least
    their minimum."""
    members: dict[str, dict[str, BareItem]] = {}
    for name, params in parse_list(value):
        if not isinstance(name, str) or isinstance(name, Token):
            raise MalformedField(f"{field} member {name!r} must be a String (quoted policy name)")
        if required not in params:
            raise MalformedField(f"{field} member {name!r} lacks the required {required!r} parameter")
        for key, minimum in integers.items():
            if key in params:
                v = params[key]
                if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                    raise MalformedField(f"{field} member {name!r}: {key} must be an Integer >= {minimum}")
        if "pk" in params and not isinstance(params["pk"], bytes):
            raise MalformedField(f"{field} member {name!r}: pk must be a Byte Sequence")
        members[name] = params
    if not members:
        raise MalformedField(f"{field} must not be empty")
    return members


def parse_ratelimit_policy(value: str) -> dict[str, dict[str, BareItem]]:
    """`RateLimit-Policy` as {policy name: parameters}; raises `MalformedField`."""
    members = _named(value, "RateLimit-Policy", {"q": 0, "w": 1}, "q")
    for name, params in members.items():
        if "qu" in params and (not isinstance(params["qu"], str) or isinstance(params["qu"], Token)):
            raise MalformedField(f"RateLimit-Policy member {name!r}: qu must be a String")
    return members


def parse_ratelimit(value: str) -> dict[str, dict[str, BareItem]]:
    """`RateLimit` as {policy name: parameters}; raises `MalformedField`."""
    return _named(value, "RateLimit", {"r": 0, "t": 0}, "r")
