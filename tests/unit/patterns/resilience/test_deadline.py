import asyncio

import pytest

from bookvault.patterns.clock import FakeClock
from bookvault.patterns.resilience import (
    DEADLINE_HEADER,
    Deadline,
    DeadlineExceeded,
    current_deadline,
    timeout,
    use_deadline,
)


def test_header_round_trip_carries_the_remaining_budget(clock: FakeClock) -> None:
    at_gateway = Deadline.after(2.5, clock=clock)
    assert DEADLINE_HEADER == "X-Request-Deadline-Ms"
    assert at_gateway.to_header() == "2500"

    clock.advance(0.3)  # time spent before the next hop
    header = at_gateway.to_header()
    assert header == "2200"
    in_service = Deadline.from_header(header, clock=clock)
    assert in_service.remaining() == pytest.approx(2.2)
    assert in_service.at == pytest.approx(at_gateway.at)


def test_header_rounds_down_so_a_callee_never_gets_more_time(clock: FakeClock) -> None:
    assert Deadline.after(1.9999, clock=clock).to_header() == "1999"


def test_an_expired_deadline_encodes_as_zero_and_decodes_expired(clock: FakeClock) -> None:
    deadline = Deadline.after(1.0, clock=clock)
    clock.advance(5.0)
    assert deadline.expired
    assert deadline.remaining() == 0.0
    assert deadline.to_header() == "0"
    assert Deadline.from_header("0", clock=clock).expired


def test_a_decoded_budget_is_capped(clock: FakeClock) -> None:
    assert Deadline.from_header("86400000", clock=clock).remaining() == 300.0
    assert Deadline.from_header("86400000", clock=clock, max_seconds=5.0).remaining() == 5.0


# "\uff11\uff12" is full-width "12": str.isdigit() and int() accept it, a header must not.
@pytest.mark.parametrize("value", ["", "soon", "-5", "1.5", "1e3", "\uff11\uff12", "9" * 13])
def test_a_malformed_header_is_a_precise_value_error(value: str, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="X-Request-Deadline-Ms must be a whole number of milliseconds"):
        Deadline.from_header(value, clock=clock)


def test_within_picks_the_sooner_limit(clock: FakeClock) -> None:
    deadline = Deadline.after(2.0, clock=clock)
    assert deadline.within(5.0) is deadline
    assert deadline.within(0.5).remaining() == 0.5


def test_an_inner_scope_can_shorten_but_never_extend_the_deadline(clock: FakeClock) -> None:
    assert current_deadline() is None
    outer = Deadline.after(1.0, clock=clock)
    with use_deadline(outer):
        with use_deadline(Deadline.after(10.0, clock=clock)) as effective:
            assert effective is outer
        shorter = Deadline.after(0.2, clock=clock)
        with use_deadline(shorter):
            assert current_deadline() is shorter
        assert current_deadline() is outer
    assert current_deadline() is None


async def test_timeout_lets_a_call_within_the_deadline_finish(clock: FakeClock) -> None:
    deadline = Deadline.after(5.0, clock=clock)
    async with timeout(deadline) as inside:
        assert inside is deadline
        assert current_deadline() is deadline
        await asyncio.sleep(0)
    assert current_deadline() is None


async def test_timeout_cancels_the_call_at_the_deadline(clock: FakeClock) -> None:
    never = asyncio.Event()
    # One microsecond of budget: the loop's timer fires on its next turn.
    with pytest.raises(DeadlineExceeded) as exceeded:
        async with timeout(Deadline.after(1e-6, clock=clock)):
            await never.wait()
    assert isinstance(exceeded.value, TimeoutError)
    assert isinstance(exceeded.value.__cause__, TimeoutError)


async def test_an_expired_deadline_does_not_start_the_call(clock: FakeClock) -> None:
    deadline = Deadline.after(1.0, clock=clock)
    clock.advance(1.0)
    started = False
    with pytest.raises(DeadlineExceeded, match="0 ms left"):
        async with timeout(deadline):
            started = True
    assert not started


async def test_a_timeout_error_from_the_body_is_not_disguised(clock: FakeClock) -> None:
    with pytest.raises(TimeoutError) as raised:
        async with timeout(Deadline.after(5.0, clock=clock)):
            raise TimeoutError("the database said so")
    assert type(raised.value) is TimeoutError


async def test_timeout_honours_the_sooner_current_deadline(clock: FakeClock) -> None:
    with use_deadline(Deadline.after(0.0, clock=clock)), pytest.raises(DeadlineExceeded):
        async with timeout(Deadline.after(60.0, clock=clock)):
            pytest.fail("the current deadline has already passed")


def test_nan_is_not_a_deadline(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="NaN"):
        Deadline.after(float("nan"), clock=clock)
