"""The simulator clock: real, shifted, frozen, and sleepers that wake when it moves."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from otpsim.clock import Clock, ClockView, iso, parse_iso


class FakeTime:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_follows_real_time_with_an_offset() -> None:
    real = FakeTime(1000.0)
    clock = Clock(time_source=real)
    assert clock.time() == 1000.0
    clock.advance(60)
    real.now += 5
    assert clock.time() == 1065.0
    assert clock.offset == 60


def test_frozen_stands_still_until_moved() -> None:
    real = FakeTime(1000.0)
    clock = Clock(time_source=real, frozen=True)
    real.now += 100
    assert clock.time() == 1000.0
    clock.advance(10)
    assert clock.time() == 1010.0
    clock.freeze(False)
    real.now += 1
    assert clock.time() == 1011.0


def test_set_and_reset_to_the_configured_start() -> None:
    real = FakeTime(1000.0)
    clock = Clock(start=5000.0, frozen=True, time_source=real)
    clock.set(parse_iso("2030-01-01T00:00:00Z"))
    assert iso(clock.time()) == "2030-01-01T00:00:00.000Z"
    clock.reset()
    assert clock.time() == 5000.0
    assert clock.frozen


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-01-01T00:00:00Z", "2030-01-01T00:00:00.000Z"),
        ("2030-01-01T01:00:00+01:00", "2030-01-01T00:00:00.000Z"),
        ("2030-01-01T00:00:00", "2030-01-01T00:00:00.000Z"),
        ("2030-01-01 00:00:00.250z", "2030-01-01T00:00:00.250Z"),
    ],
)
def test_iso_round_trip(text: str, expected: str) -> None:
    assert iso(parse_iso(text)) == expected


def test_parse_iso_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_iso("next tuesday")


async def test_sleeper_wakes_when_the_clock_is_advanced() -> None:
    clock = Clock(start=0.0, frozen=True)
    sleeper = asyncio.ensure_future(clock.sleep_until(100.0))
    await asyncio.sleep(0.01)
    clock.advance(50)
    await asyncio.sleep(0.01)
    assert not sleeper.done()
    clock.advance(50)
    assert await asyncio.wait_for(sleeper, timeout=2) is True


async def test_sleeper_gives_up_after_its_real_timeout_on_a_frozen_clock() -> None:
    clock = Clock(start=0.0, frozen=True)
    assert await asyncio.wait_for(clock.sleep_until(100.0, real_timeout=0.05), timeout=2) is False


async def test_sleeper_on_a_running_clock_wakes_with_real_time() -> None:
    clock = Clock()
    assert await asyncio.wait_for(clock.sleep_until(clock.time() + 0.05), timeout=2) is True


@given(st.floats(min_value=-86_400, max_value=253_402_300_799.0))
@example(0.9999995)
@example(1_795_000_000.9995)
@example(-0.0000004)
@example(59.9999996)
def test_iso_is_what_datetime_says(ts: float) -> None:
    expected = datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")
    assert iso(ts) == expected.replace("+00:00", "Z")


def test_the_offset_shown_is_whole_milliseconds_not_float_noise() -> None:
    # At today's timestamps a double has 2.4e-7 s of grain: start - now + now is not start.
    real = FakeTime(1_763_860_000.1234567)
    clock = Clock(start=real.now + 0.3, time_source=real)
    assert clock.snapshot()["offset"] == 0.3
    clock.advance(200)
    assert clock.snapshot()["offset"] == 200.3
    assert clock.offset != 200.3  # the arithmetic itself is untouched
    still = Clock(start=real.now, time_source=real)
    real.now += 1e-7
    shown = still.snapshot()["offset"]
    assert shown == 0
    assert str(shown) == "0.0"  # not "-0.0"


def test_an_accounts_clock_shows_whole_milliseconds_too() -> None:
    real = FakeTime(1_763_860_000.1234567)
    view = ClockView(Clock(start=real.now + 0.3, time_source=real))
    view.advance(200)
    assert view.snapshot()["offset"] == 200.3
