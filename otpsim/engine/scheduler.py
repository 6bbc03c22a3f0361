"""The one scheduler: a heap of timed jobs on the simulator clock.

Every timed thing otpsim does is a :class:`Job` here: an SMS delivered after its delay,
an OTP expiring at its ``dateExpires``, a callback attempt becoming due, a token
expiring. When the clock reaches (or jumps past) jobs, :meth:`Scheduler.run_due` runs
every due one in due-time order, and while a job runs :meth:`Scheduler.now` reads its
due time: whatever the job records (``deliveredAt``, an expiry, a callback attempt's
time) and whatever it publishes is stamped with the time it was due, not the time the
clock was moved to. A job that schedules another (an expiry's callback, due at once)
runs in the same pass if that one is due too. Ties are broken by kind (SMS before
expiry before callback before token), then by the order of scheduling.

Example::

    scheduler = Scheduler(clock)
    scheduler.handle(Kind.EXPIRY, lambda job: expire(job.key, at=job.due))
    scheduler.at(clock.time() + 300, Kind.EXPIRY, otp_id)
    clock.advance(400)
    scheduler.run_due()   # the expiry runs, with scheduler.now() == its due time
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from otpsim.clock import Clock

log = logging.getLogger("otpsim.scheduler")


class Kind(IntEnum):
    """What a job does; at the same due time, lower kinds run first."""

    SMS = 0  # an SMS reaches the phone (key: message id)
    EXPIRY = 1  # an OTP's TTL runs out (key: OTP id)
    CALLBACK = 2  # a callback delivery's next attempt is due (key: delivery id)
    TOKEN = 3  # an OAuth token expires (key: the token)


@dataclass(order=True, slots=True)
class Job:
    due: float
    kind: Kind
    seq: int
    key: str = field(compare=False)
    ref: object = field(default=None, compare=False)  # what the job acts on, if kept
    cancelled: bool = field(default=False, compare=False)


class Timers(Protocol):
    """What a collaborator outside the engine (the callback dispatcher) may do with the
    scheduler: read the simulator's time, and schedule or cancel its own jobs."""

    def now(self) -> float: ...

    def at(self, due: float, kind: Kind, key: str, ref: object = None) -> Job: ...

    def cancel(self, job: Job) -> None: ...

    def run_due(self) -> int: ...

    def handle(
        self, kind: Kind, run: Callable[[Job], None], alive: Callable[[Job], bool] | None = None
    ) -> None: ...


COMPACT_ABOVE = 4096  # heap entries before stale jobs are swept out


class Scheduler:
    """One heap of jobs, ordered by (due time, kind, sequence); see the module docs."""

    def __init__(self, clock: Clock, *, compact_above: int = COMPACT_ABOVE) -> None:
        self._clock = clock
        self._heap: list[Job] = []
        self._seq = itertools.count()
        self._run: dict[Kind, Callable[[Job], None]] = {}
        self._alive: dict[Kind, Callable[[Job], bool]] = {}
        self._current: float | None = None  # the due time of the job running now
        self._changed = asyncio.Event()
        self._base_limit = compact_above
        self._limit = compact_above
        self.ran = 0  # jobs run so far (for tests and metrics)

    # -- time --------------------------------------------------------------------------

    def now(self) -> float:
        """The simulator's time: a running job's due time, else the clock's."""
        return self._current if self._current is not None else self._clock.time()

    # -- jobs --------------------------------------------------------------------------

    def handle(
        self, kind: Kind, run: Callable[[Job], None], alive: Callable[[Job], bool] | None = None
    ) -> None:
        """Who runs jobs of ``kind``; ``alive`` says whether a waiting one still matters
        (stale ones are swept out when the heap grows)."""
        self._run[kind] = run
        if alive is not None:
            self._alive[kind] = alive

    def at(self, due: float, kind: Kind, key: str, ref: object = None) -> Job:
        """Run a job of ``kind`` for ``key`` when the clock reaches ``due``."""
        job = Job(due, kind, next(self._seq), key, ref)
        first = not self._heap or job < self._heap[0]
        heapq.heappush(self._heap, job)
        if first:
            self._changed.set()
        if len(self._heap) > self._limit:
            self._compact()
        return job

    def cancel(self, job: Job) -> None:
        """The job will not run (it leaves the heap when it comes up, or at a sweep)."""
        job.cancelled = True

    def cancel_where(self, kind: Kind, which: Callable[[Job], bool]) -> None:
        """Cancel every waiting job of ``kind`` that ``which`` picks (O(jobs): for resets)."""
        for job in self._heap:
            if job.kind is kind and not job.cancelled and which(job):
                job.cancelled = True

    def clear(self, kind: Kind | None = None) -> None:
        """Forget every job (of one kind)."""
        if kind is None:
            self._heap.clear()
        else:
            self._heap = [job for job in self._heap if job.kind is not kind]
            heapq.heapify(self._heap)
        self._changed.set()

    def pending(self, kind: Kind | None = None) -> int:
        """Jobs waiting (cancelled ones included until they leave)."""
        return sum(1 for job in self._heap if kind is None or job.kind is kind)

    def next_due(self) -> float | None:
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].due if self._heap else None

    def _compact(self) -> None:
        """Drop cancelled and stale jobs; the threshold grows with what is left, so a
        heap full of live jobs is swept at amortized O(1) per job."""
        kept = []
        for job in self._heap:
            if job.cancelled:
                continue
            alive = self._alive.get(job.kind)
            if alive is None or alive(job):
                kept.append(job)
        heapq.heapify(kept)
        self._heap = kept
        self._limit = max(self._base_limit, 2 * len(kept))

    # -- running -------------------------------------------------------------------------

    def run_due(self) -> int:
        """Run every job due by now, in order, each at its own due time; how many ran."""
        if self._current is not None:  # called from inside a job: the outer pass goes on
            return 0
        heap, ran = self._heap, 0
        while heap:
            now = self._clock.time()
            job = heap[0]
            if job.due > now:
                break
            heapq.heappop(heap)
            if job.cancelled:
                continue
            run = self._run.get(job.kind)
            if run is None:
                continue
            self._current = job.due
            try:
                run(job)
            except Exception:  # one job's failure never stops the others
                log.exception("scheduled %s job for %s failed", job.kind.name, job.key)
            finally:
                self._current = None
            ran += 1
            heap = self._heap  # a job may have compacted it
        self.ran += ran
        return ran

    async def run(self) -> None:
        """Run forever: each job when the clock reaches it (at once after a jump)."""
        while True:
            self.run_due()
            self._changed.clear()
            await self._clock.wait_for_change(self.next_due(), self._changed)
