"""The simulator's clock: real time by default, movable for tests.

Everything time-based in otpsim (expiry, rate-limit windows, token lifetimes, waits)
reads this clock instead of the system's, so a test can jump ten minutes ahead
instantly and replay the same run.

Example::

    clock = Clock()                 # follows real time
    clock.advance(600)              # ten minutes later, at once
    clock.freeze(True)              # time stands still until moved
    clock.set(datetime(2030, 1, 1, tzinfo=UTC))
    await clock.sleep_until(clock.time() + 30)   # wakes when the clock gets there
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class ClockState:
    """What it takes to bring a clock back after a restart."""

    offset: float  # seconds between the clock and real time, while it runs
    frozen_at: float | None  # where it stands, if frozen

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClockState:
        frozen = data.get("frozen_at")
        return cls(float(data.get("offset") or 0.0), None if frozen is None else float(frozen))


def shown(offset: float) -> float:
    """An offset as ``GET /_sim/clock`` shows it: whole milliseconds. At today's
    timestamps a double's grain is 2.4e-7 s, so ``time() - real time`` carries noise
    (``199.99999976158142`` after moving 200 s); the clock itself keeps every digit."""
    return round(offset, 3) + 0.0  # + 0.0: never "-0.0"


def to_datetime(ts: float) -> datetime:
    """A Unix timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, tz=UTC)


def iso(ts: float) -> str:
    """A Unix timestamp as ISO 8601 UTC with milliseconds, e.g. ``2026-01-02T03:04:05.678Z``.

    The same text as ``to_datetime(ts).isoformat(timespec="milliseconds")`` with a ``Z``
    (microseconds rounded half to even, then cut to milliseconds), without building a
    datetime: every answer carries two of these, mostly within the same few seconds.
    The last one is kept: an OTP's creation and its SMS's are the same instant.
    """
    global _last_iso
    last = _last_iso
    if last[0] == ts:
        return last[1]
    fraction, whole = math.modf(ts)
    seconds = int(whole)
    micros = round(fraction * 1_000_000)
    if micros < 0:
        seconds, micros = seconds - 1, micros + 1_000_000
    elif micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    text = f"{_iso_seconds(seconds)}.{micros // 1000:03d}Z"
    _last_iso = (ts, text)  # one tuple: read and replaced atomically (threads)
    return text


_last_iso: tuple[float, str] = (math.nan, "")  # NaN: equal to no time


@functools.lru_cache(maxsize=1024)
def _iso_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def parse_iso(text: str) -> float:
    """Parse an ISO 8601 time (``Z`` or an offset; naive means UTC) to a Unix timestamp.

    Raises ``ValueError`` with a readable message when it is not one.
    """
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


class Clock:
    """A clock that follows real time, shifted by an offset, or stands frozen.

    ``time_source`` is the real clock (``time.time``); tests may pass their own.
    Coroutines waiting in :meth:`sleep_until` wake as soon as the clock reaches their
    deadline, whether real time passes or the clock is moved.
    """

    def __init__(
        self,
        *,
        start: float | None = None,
        frozen: bool = False,
        time_source: Callable[[], float] = time.time,
    ) -> None:
        self._source = time_source
        self._offset = 0.0 if start is None else start - time_source()
        self._frozen_at: float | None = None
        self._changed = asyncio.Event()
        self.on_change: Callable[[], None] | None = None  # e.g. persist the state
        if frozen:
            self.freeze(True)
            if start is not None:
                self._frozen_at = start  # exactly, not via the float offset
        self._initial = (self._offset, self._frozen_at)

    # -- reading ---------------------------------------------------------------------

    def time(self) -> float:
        """Now, as a Unix timestamp in seconds."""
        if self._frozen_at is not None:
            return self._frozen_at
        return self._source() + self._offset

    def now(self) -> datetime:
        """Now, as an aware UTC datetime."""
        return to_datetime(self.time())

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    @property
    def offset(self) -> float:
        """Seconds between this clock and real time."""
        return self.time() - self._source()

    def snapshot(self) -> dict[str, object]:
        """The clock's state as JSON-ready data."""
        now = self.time()
        return {
            "now": iso(now),
            "timestamp": now,
            "frozen": self.frozen,
            "offset": shown(self.offset),
        }

    # -- moving ----------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or, with a negative number, back)."""
        if self._frozen_at is not None:
            self._frozen_at += seconds
        else:
            self._offset += seconds
        self._notify()

    def set(self, when: float | datetime) -> None:
        """Jump to an absolute time (a Unix timestamp or an aware datetime)."""
        ts = when.timestamp() if isinstance(when, datetime) else float(when)
        if self._frozen_at is not None:
            self._frozen_at = ts
        else:
            self._offset = ts - self._source()
        self._notify()

    def freeze(self, frozen: bool) -> None:
        """Stop the clock where it is, or let it run again from where it stands."""
        if frozen and self._frozen_at is None:
            self._frozen_at = self.time()
        elif not frozen and self._frozen_at is not None:
            self._offset = self._frozen_at - self._source()
            self._frozen_at = None
        self._notify()

    def reset(self) -> None:
        """Back to how the clock was configured: real time (or the configured start)."""
        self._offset, self._frozen_at = self._initial
        self._notify()

    def _notify(self) -> None:
        self.poke()
        if self.on_change is not None:
            self.on_change()

    def poke(self) -> None:
        """Wake whoever waits on this clock (a view of it moved)."""
        self._changed.set()
        self._changed = asyncio.Event()

    def state(self) -> ClockState:
        """What it takes to bring the clock back after a restart."""
        return ClockState(self._offset, self._frozen_at)

    def restore(self, state: ClockState) -> None:
        """The clock as :meth:`state` described it (a running clock went on meanwhile)."""
        self._offset = state.offset
        self._frozen_at = state.frozen_at
        self._notify()

    # -- waiting ---------------------------------------------------------------------

    async def sleep_until(self, deadline: float, *, real_timeout: float | None = None) -> bool:
        """Wait until the clock reads ``deadline`` or later.

        Returns True when the clock got there, False when ``real_timeout`` wall-clock
        seconds passed first (a bound so that a frozen clock never hangs a caller).
        """
        give_up = None if real_timeout is None else time.monotonic() + real_timeout
        while True:
            remaining = deadline - self.time()
            if remaining <= 0:
                return True
            limit = None if self.frozen else remaining
            if give_up is not None:
                left = give_up - time.monotonic()
                if left <= 0:
                    return False
                limit = left if limit is None else min(limit, left)
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=limit)

    async def wait_for_change(self, deadline: float | None, changed: asyncio.Event) -> None:
        """Wait until the clock reaches ``deadline`` (None: never) or ``changed`` is set.

        The shape of every scheduler here: sleep until the next due item, but wake at
        once when an earlier one is added.
        """
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(changed.wait())]
        if deadline is not None:
            waits.append(asyncio.ensure_future(self.sleep_until(deadline)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()


class ClockView:
    """One account's own view of a shared :class:`Clock`: the shared time shifted by an
    offset, or frozen at an instant of its own. A move of the shared clock moves every
    view with it (see :meth:`shift`); a move of a view moves nothing else.

    A running view follows the shared clock (frozen when it is frozen); a frozen view
    stands still until it is moved.
    """

    def __init__(self, base: Clock) -> None:
        self._base = base
        self._offset = 0.0
        self._frozen_at: float | None = None

    def time(self) -> float:
        if self._frozen_at is not None:
            return self._frozen_at
        return self._base.time() + self._offset

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    @property
    def ahead(self) -> float:
        """Seconds this view is ahead of the shared clock (negative: behind)."""
        return self.time() - self._base.time()

    def stands_still(self) -> bool:
        """Whether time passing moves this view (no: frozen, or the shared clock is)."""
        return self._frozen_at is not None or self._base.frozen

    def snapshot(self) -> dict[str, object]:
        now = self.time()
        return {
            "now": iso(now),
            "timestamp": now,
            "frozen": self.stands_still(),
            "offset": shown(self._base.offset + self.ahead),
        }

    def advance(self, seconds: float) -> None:
        if self._frozen_at is not None:
            self._frozen_at += seconds
        else:
            self._offset += seconds
        self._base.poke()

    def set(self, when: float) -> None:
        if self._frozen_at is not None:
            self._frozen_at = float(when)
        else:
            self._offset = float(when) - self._base.time()
        self._base.poke()

    def freeze(self, frozen: bool) -> None:
        """Stand still where it is, or follow the shared clock again from here."""
        if frozen and self._frozen_at is None:
            self._frozen_at = self.time()
        elif not frozen and self._frozen_at is not None:
            self._offset = self._frozen_at - self._base.time()
            self._frozen_at = None
        self._base.poke()

    def shift(self, seconds: float) -> None:
        """The shared clock moved by ``seconds``: a running view moved with it already;
        a frozen one moves too."""
        if self._frozen_at is not None:
            self._frozen_at += seconds

    async def sleep_until(self, deadline: float, *, real_timeout: float | None = None) -> bool:
        """As :meth:`Clock.sleep_until`, on this view."""
        give_up = None if real_timeout is None else time.monotonic() + real_timeout
        while True:
            remaining = deadline - self.time()
            if remaining <= 0:
                return True
            limit = None if self.stands_still() else remaining
            if give_up is not None:
                left = give_up - time.monotonic()
                if left <= 0:
                    return False
                limit = left if limit is None else min(limit, left)
            changed = self._base._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=limit)
