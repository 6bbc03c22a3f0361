"""A fixed-window rate limiter on the simulator clock, one budget per credential.

Windows are aligned to the clock (a 60 s window runs from :00 to :59), so
``X-Rate-Limit-Reset`` is the same for every caller and advancing the virtual clock
opens the next window at once. With no limit configured nothing is refused, and the
headers report a nominal budget of :data:`NOMINAL_LIMIT`.

Example::

    limiter = RateLimiter(clock, limit=2, window=60)
    limiter.hit("key-a").allowed   # True, True, then False until the window turns
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import NamedTuple

from otpsim.clock import Clock

NOMINAL_LIMIT = 1_000_000
# Credentials counted at once. The window turns for every budget together, which empties
# the table; on a frozen clock it never does, so beyond this the least recently counted
# credential is forgotten (its budget starts again: it was not in use).
MAX_KEYS = 10_000


class RateState(NamedTuple):
    limit: int
    remaining: int
    reset: int  # Unix time (seconds) when the window reopens
    allowed: bool

    def headers(self) -> dict[str, str]:
        headers = {
            "X-Rate-Limit-Limit": str(self.limit),
            "X-Rate-Limit-Remaining": str(self.remaining),
        }
        if not self.allowed:
            headers["X-Rate-Limit-Reset"] = str(self.reset)
        return headers


class RateLimiter:
    def __init__(
        self, clock: Clock, limit: int | None, window: float, *, max_keys: int = MAX_KEYS
    ) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self.limit = limit
        self.window = window
        self._window_start = -math.inf
        self._window_end = -math.inf
        self._reset_at = 0  # math.ceil(self._window_end), once per window
        # In order of use, least recent first. An OrderedDict: moving a key to the end
        # and dropping the first are O(1) (a dict's pop and re-insert leaves deleted
        # slots at its front, which ``next(iter(dict))`` walks: O(table) per new
        # credential once the table is full).
        self._counts: OrderedDict[str, int] = OrderedDict()

    def configure(self, limit: int | None, window: float) -> None:
        """New limits from now on (a scenario's); counting starts again."""
        self.limit = limit
        self.window = window
        self.reset()

    def hit(self, key: str) -> RateState:
        """Count one request for ``key`` and say whether it may proceed."""
        now = self._clock.time()
        if not self._window_start <= now < self._window_end:
            # Every budget shares the aligned window: a new window forgets the old counts.
            self._window_start = math.floor(now / self.window) * self.window
            self._window_end = self._window_start + self.window
            self._reset_at = math.ceil(self._window_end)
            self._counts = OrderedDict()
        counts = self._counts
        count = counts.get(key, 0) + 1
        if count == 1 and len(counts) >= self._max_keys:
            counts.popitem(last=False)  # the least recently counted
        counts[key] = count
        counts.move_to_end(key)  # the table is in order of use
        limit = self.limit
        if limit is None:
            return RateState(NOMINAL_LIMIT, max(0, NOMINAL_LIMIT - count), self._reset_at, True)
        return RateState(limit, max(0, limit - count), self._reset_at, count <= limit)

    def __len__(self) -> int:
        """How many credentials are counted in the current window."""
        return len(self._counts)

    def reset(self) -> None:
        self._window_start = -math.inf
        self._window_end = -math.inf
        self._counts = OrderedDict()
