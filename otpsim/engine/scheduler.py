"""The one scheduler: a heap of timed jobs on the simulator clock.

Every timed thing otpsim does is a :class:`Job` here: an SMS delivered after its delay,
an OTP expiring at its ``dateExpires``, a callback attempt becoming due, a token
expiring. When the clock reaches (or jumps past) jobs, :meth:`Scheduler.run_due` runs
every due one in due-time order, and while a job runs :meth:`Scheduler.now` reads its
due time: whatever the job records (``deliveredAt``, an expiry, a callback attempt's
time) and whatever it publishes is stamped with the time it was due, not the time the
clock was moved to. A job that schedules another (an expiry's callback, due at once)
runs in the same pass if that one is due too. Ties are broken by kind (SMS before
expiry before callback before token before a callback batch's close), then by the order
of scheduling.

A clock jump (:meth:`Scheduler.jump`) is a pass that may wait: a job whose handler
returns an awaitable (a callback attempt, real HTTP) holds the pass until it is done,
so the jobs due after it, and what that attempt scheduled (its retry), run after it in
due order. While a pass is held, other passes leave the jobs to it (requests served
meanwhile act at the clock's time, the time the clock was moved to). The waiting is
bounded in wall-clock time per jump; past the bound the pass runs on without waiting,
as the real-time loop always does.

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
import time
from collections.abc import Awaitable, Callable
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
    BATCH = 4  # a callback batch's window closes (key: its delivery id)


@dataclass(order=True, slots=True)
class Job:
    due: float
    kind: Kind
    seq: int
    key: str = field(compare=False)
    ref: object = field(default=None, compare=False)  # what the job acts on, if kept
    cancelled: bool = field(default=False, compare=False)


# What runs a job: returns None, or a future that a clock jump waits for (bounded)
# before it runs the next job (outside a jump it is not waited for).
RunJob = Callable[[Job], Awaitable[object] | None]


class Timers(Protocol):
    """What a collaborator outside the engine (the callback dispatcher) may do with the
    scheduler: read the simulator's time, and schedule or cancel its own jobs."""

    def now(self) -> float: ...

    def jumping(self) -> bool: ...

    def at(self, due: float, kind: Kind, key: str, ref: object = None) -> Job: ...

    def cancel(self, job: Job) -> None: ...

    def run_due(self) -> int: ...

    def handle(
        self, kind: Kind, run: RunJob, alive: Callable[[Job], bool] | None = None
    ) -> None: ...


COMPACT_ABOVE = 4096  # heap entries before stale jobs are swept out


class Scheduler:
    """One heap of jobs, ordered by (due time, kind, sequence); see the module docs."""

    def __init__(self, clock: Clock, *, compact_above: int = COMPACT_ABOVE) -> None:
        self._clock = clock
        self._heap: list[Job] = []
        self._seq = itertools.count()
        self._run: dict[Kind, RunJob] = {}
        self._alive: dict[Kind, Callable[[Job], bool]] = {}
        self._current: float | None = None  # the due time of the job running now
        self._held: float | None = None  # a jump's pass waits on a job due then
        self._jumping = False  # the pass running (or held) is a clock jump's
        self._wait_until = 0.0  # (monotonic) a jump waits on jobs until then
        self._settled = asyncio.Event()
        self._settled.set()
        self._changed = asyncio.Event()
        self._base_limit = compact_above
        self._limit = compact_above
        self.ran = 0  # jobs run so far (for tests and metrics)

    # -- time --------------------------------------------------------------------------

    def now(self) -> float:
        """The simulator's time: a running job's due time, else the clock's (also while
        a jump is held: a request meanwhile acts at the time the clock was moved to)."""
        return self._current if self._current is not None else self._clock.time()

    def jumping(self) -> bool:
        """Whether a clock jump's pass is under way (held on a job)."""
        return self._held is not None

    # -- jobs --------------------------------------------------------------------------

    def handle(self, kind: Kind, run: RunJob, alive: Callable[[Job], bool] | None = None) -> None:
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
        """Run every job due by now, in order, each at its own due time; how many ran.
        (Nothing while a jump's pass is held: it runs them in order when it goes on.)"""
        if self._current is not None or self._held is not None:
            return 0  # called from inside a job, or a jump is under way: that pass goes on
        return self._pass()

    def jump(self, wait: float) -> None:
        """After the clock moved: run what is due as a clock jump's pass, which waits
        for each job's awaitable (at most ``wait`` wall-clock seconds in all) before it
        runs the next job. Returns at once when it has to wait; :meth:`settled` says
        when the pass is done. A jump while another is held joins that one, within its
        bound (so jumps in a row never hold the jobs due longer than one bound each)."""
        if self._held is not None or self._current is not None:
            return
        self._wait_until = time.monotonic() + wait
        self._jumping = True
        self._settled.clear()
        self._pass()

    async def settled(self) -> None:
        """Return once no clock jump's pass is under way."""
        while not self._settled.is_set():
            await self._settled.wait()

    def _pass(self) -> int:
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
            outcome: Awaitable[object] | None = None
            try:
                outcome = run(job)
            except Exception:  # one job's failure never stops the others
                log.exception("scheduled %s job for %s failed", job.kind.name, job.key)
            finally:
                self._current = None
            ran += 1
            heap = self._heap  # a job may have compacted it
            if outcome is not None and self._jumping and self._hold(job.due, outcome):
                break
        if self._held is None and self._jumping:  # nothing more due: the jump is done
            self._jumping = False
            self._settled.set()
        self.ran += ran
        return ran

    def _hold(self, due: float, outcome: Awaitable[object]) -> bool:
        """Hold the jump's pass at ``due`` until ``outcome`` is done (within the jump's
        wall-clock bound); False if there is nothing to wait for."""
        left = self._wait_until - time.monotonic()
        future = asyncio.ensure_future(outcome)
        if left <= 0 or future.done():
            return False
        self._held = due
        waiter = asyncio.ensure_future(asyncio.wait_for(asyncio.shield(future), left))
        waiter.add_done_callback(self._resume)
        return True

    def _resume(self, waiter: asyncio.Future[object]) -> None:
        if not waiter.cancelled():
            waiter.exception()  # (a timeout: the job goes on without the pass)
        self._held = None
        self._pass()

    async def run(self) -> None:
        """Run forever: each job when the clock reaches it (at once after a jump)."""
        while True:
            self.run_due()
            self._changed.clear()
            if self._held is not None:  # a jump's pass goes on by itself
                await self.settled()
                continue
            await self._clock.wait_for_change(self.next_due(), self._changed)
