"""Deadlines: how long the original caller is still willing to wait, carried across hops.

    deadline = Deadline.after(2.0)                        # at the edge (the gateway)
    headers[DEADLINE_HEADER] = deadline.to_header()       # "1998": milliseconds left
    deadline = Deadline.from_header(request.headers[DEADLINE_HEADER])   # in the service
    with use_deadline(deadline):                          # retries and bulkheads see it
        async with timeout(deadline):                     # cancel the work when it passes
            ...

On the wire the header holds the *remaining* budget in whole milliseconds, not an
absolute time: clocks of two machines disagree, while a duration does not need
them to agree (gRPC's `grpc-timeout` makes the same choice). Each hop re-encodes
what is left, so time spent in transit and queues is charged to the budget.
Rounding is down, so a callee never believes it has more time than its caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType

from ..clock import Clock, SystemClock
from ._errors import DeadlineExceeded

__all__ = ["DEADLINE_HEADER", "Deadline", "current_deadline", "timeout", "use_deadline"]

DEADLINE_HEADER = "X-Request-Deadline-Ms"
_MAX_HEADER_DIGITS = 12  # ~31 years of milliseconds; longer values are not a budget

_SYSTEM_CLOCK = SystemClock()


@dataclass(frozen=True, slots=True)
class Deadline:
    at: float
    """The clock's monotonic reading at which the budget runs out."""
    clock: Clock = field(default=_SYSTEM_CLOCK, compare=False, repr=False)

    @classmethod
    def after(cls, seconds: float, *, clock: Clock | None = None) -> Deadline:
        if seconds != seconds:  # NaN compares unequal to itself
            raise ValueError("a deadline needs a number of seconds, got NaN")
        clock = clock if clock is not None else _SYSTEM_CLOCK
        return cls(clock.monotonic() + seconds, clock)

    @classmethod
    def from_header(cls, value: str, *, clock: Clock | None = None, max_seconds: float = 300.0) -> Deadline:
        """Decode a `DEADLINE_HEADER` value (remaining milliseconds).

        `max_seconds` caps the budget, so a caller cannot make this service hold
        work longer than it would on its own. Raises `ValueError` for anything but
        a whole, non-negative number of milliseconds; a service should answer 400.
        """
        text = value.strip()
        if not text.isascii() or not text.isdigit() or len(text) > _MAX_HEADER_DIGITS:
            raise ValueError(
                f"{DEADLINE_HEADER} must be a whole number of milliseconds (0 to 12 digits), got {value!r}"
            )
        return cls.after(min(int(text) / 1000.0, max_seconds), clock=clock)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        left = self.at - self.clock.monotonic()
        return left if left > 0.0 else 0.0

    @property
    def expired(self) -> bool:
        return self.clock.monotonic() >= self.at

    def to_header(self) -> str:
        return str(int(self.remaining() * 1000.0))

    def within(self, seconds: float) -> Deadline:
        """This deadline or one `seconds` from now, whichever comes first."""
        other = Deadline.after(seconds, clock=self.clock)
        return self if self.at <= other.at else other


def earliest(first: Deadline | None, second: Deadline | None) -> Deadline | None:
    if first is None:
        return second
    if second is None:
        return first
    return first if first.at <= second.at else second


_current: ContextVar[Deadline | None] = ContextVar("bookvault_resilience_deadline", default=None)


def current_deadline() -> Deadline | None:
    """The deadline of the request being served, if a `use_deadline` block set one."""
    return _current.get()


@contextmanager
def use_deadline(deadline: Deadline | None) -> Iterator[Deadline | None]:
    """Make `deadline` current for the block (and the tasks it starts).

    An enclosing deadline that comes sooner stays in force: an inner scope can only
    shorten the budget, never extend it.
    """
    effective = earliest(_current.get(), deadline)
    token = _current.set(effective)
    try:
        yield effective
    finally:
        _current.reset(token)


def timeout(limit: Deadline | float | None, *, clock: Clock | None = None) -> _Timeout:
    """`async with timeout(deadline_or_seconds):` cancel the block when the limit passes.

    The limit is combined with the current deadline (the sooner wins) and becomes the
    current deadline inside the block. Expiry raises `DeadlineExceeded` (a
    `TimeoutError`); a limit already passed raises it before the block starts.
    """
    if limit is None or isinstance(limit, Deadline):
        return _Timeout(limit)
    return _Timeout(Deadline.after(limit, clock=clock))


class _Timeout:
    __slots__ = ("_budget", "_limit", "_scope", "_token")

    def __init__(self, limit: Deadline | None) -> None:
        self._limit = limit
        self._budget = 0.0

    async def __aenter__(self) -> Deadline | None:
        deadline = earliest(_current.get(), self._limit)
        if deadline is None:
            self._scope = asyncio.timeout(None)
        else:
            self._budget = deadline.remaining()
            if self._budget <= 0.0:
                raise DeadlineExceeded(0.0)
            self._scope = asyncio.timeout(self._budget)
        self._token = _current.set(deadline)
        await self._scope.__aenter__()
        return deadline

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._scope.__aexit__(exc_type, exc, tb)
        except TimeoutError as expired:
            # Only a timeout this scope caused becomes DeadlineExceeded; a TimeoutError
            # raised by the body itself passes through unchanged.
            if self._scope.expired():
                raise DeadlineExceeded(self._budget) from expired
            raise
        finally:
            _current.reset(self._token)
