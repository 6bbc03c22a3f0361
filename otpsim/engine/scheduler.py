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

**Clock views.** An account may have a clock of its own (:class:`~otpsim.clock.ClockView`:
the shared clock shifted, or frozen at its own instant). Each view has its own heap, and
every job carries the view it belongs to (``Job.view``; None: the shared clock). A job
runs when its own view reaches its due time; within a view, everything above holds.
The shared clock's jobs are kept in two ordered structures, merged as they run: a
FIFO *lane* for jobs scheduled at or after the latest one in it (an OTP's expiry, with
one TTL, comes due in the order OTPs were created) and the heap for the others (an
SMS's short delay, a shorter TTL, a clock set back). A job cancelled at the lane's
front (the pending-expiry cap cancels the oldest) leaves in O(1) as the next job is
scheduled, so such jobs never pile up for the O(n log n) sweep of stale jobs.
Views are run in a fixed order (the shared clock's jobs, then each view's in the order
the views were opened), so a run is deterministic; a pass looks only at the views with
jobs waiting, so idle views cost a request nothing. Which view a job goes to: the
``view=`` given to :meth:`Scheduler.at`, else the view of the job running now, else the
one the caller acts for (:meth:`Scheduler.acting_for`, a context variable: the
Simulator sets it for the account a verb acts for, so whatever listens to its events
schedules, and reads :meth:`Scheduler.now`, on that account's view).

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
import contextlib
import contextvars
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final, Protocol

from otpsim.clock import Clock, ClockView

log = logging.getLogger("otpsim.scheduler")


class Kind(IntEnum):
    """What a job does; at the same due time, lower kinds run first."""

    SMS = 0  # an SMS reaches the phone (key: message id)
    EXPIRY = 1  # an OTP's TTL runs out (key: OTP id)
    CALLBACK = 2  # a callback delivery's next attempt is due (key: delivery id)
    TOKEN = 3  # an OAuth token expires (key: the token)
    BATCH = 4  # a callback batch's window closes (key: its delivery id)


@dataclass(slots=True)
class Job:
    due: float
    kind: Kind
    seq: int
    key: str = field(compare=False)
    ref: object = field(default=None, compare=False)  # what the job acts on, if kept
    cancelled: bool = field(default=False, compare=False)
    # Whose clock it runs on: an account (on its own view while it has one, else on
    # the shared clock), or None (the shared clock).
    view: str | None = field(default=None, compare=False)

    def __lt__(self, other: Job) -> bool:
        """Ordered by (due, kind, seq), as the heap needs; written out rather than
        ``order=True``'s two tuples per comparison: a sweep heapifies 100,000 jobs."""
        if self.due != other.due:
            return self.due < other.due
        if self.kind != other.kind:
            return self.kind < other.kind
        return self.seq < other.seq


class _Acting:
    """The default of ``view=``: whatever view the caller acts in (see the module docs)."""


ACTING: Final = _Acting()
# The account a verb acts for (None: the shared clock); per task, so concurrent
# requests never see each other's.
_acting: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "otpsim_acting_view", default=None
)


class _ActingFor:
    """:meth:`Scheduler.acting_for`'s context manager (a class: it is on every verb's
    path, and a generator-based one costs a generator and its wrapper per use)."""

    __slots__ = ("_token", "_view")

    def __init__(self, view: str | None) -> None:
        self._view = view
        self._token: contextvars.Token[str | None] | None = None

    def __enter__(self) -> None:
        self._token = _acting.set(self._view)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _acting.reset(self._token)
            self._token = None


# What runs a job: returns None, or a future that a clock jump waits for (bounded)
# before it runs the next job (outside a jump it is not waited for).
RunJob = Callable[[Job], Awaitable[object] | None]


class Timers(Protocol):
    """What a collaborator outside the engine (the callback dispatcher) may do with the
    scheduler: read the simulator's time, and schedule or cancel its own jobs."""

    def now(self, view: str | _Acting | None = ACTING) -> float: ...

    def jumping(self) -> bool: ...

    def at(
        self,
        due: float,
        kind: Kind,
        key: str,
        ref: object = None,
        *,
        view: str | _Acting | None = ACTING,
    ) -> Job: ...

    def acting_for(self, view: str | None) -> contextlib.AbstractContextManager[None]: ...

    def cancel(self, job: Job) -> None: ...

    def run_due(self) -> int: ...

    def handle(
        self, kind: Kind, run: RunJob, alive: Callable[[Job], bool] | None = None
    ) -> None: ...


COMPACT_ABOVE = 4096  # heap entries before stale jobs are swept out


class Scheduler:
    """Heaps of jobs (one per clock view), each ordered by (due time, kind, sequence);
    see the module docs."""

    def __init__(self, clock: Clock, *, compact_above: int = COMPACT_ABOVE) -> None:
        self._clock = clock
        self._heaps: dict[str | None, list[Job]] = {None: []}
        # The shared clock's jobs scheduled in (due, kind, seq) order: see the module docs.
        self._lane: deque[Job] = deque()
        self._views: dict[str, ClockView] = {}
        # The views whose heap may hold jobs (a superset: emptied ones leave at the next
        # pass), each with its opening number: a pass walks only these, in that order.
        self._busy: dict[str, int] = {}
        self._opened: dict[str, int] = {}
        self._open_seq = itertools.count()
        self._seq = itertools.count()
        self._run: dict[Kind, RunJob] = {}
        self._alive: dict[Kind, Callable[[Job], bool]] = {}
        self._current: Job | None = None  # the job running now
        self._running_in: str | None = None  # ... and the view whose heap it came from
        self._held = False  # a clock jump's pass waits on a job's outcome
        self._jumping = False  # the pass running (or held) is a clock jump's
        self._wait_until = 0.0  # (monotonic) a jump waits on jobs until then
        self._settled = asyncio.Event()
        self._settled.set()
        self._changed = asyncio.Event()
        self._base_limit = compact_above
        self._limits: dict[str | None, int] = {None: compact_above}
        self.ran = 0  # jobs run so far (for tests and metrics)

    # -- time --------------------------------------------------------------------------

    def _owner(self, view: str | _Acting | None) -> str | None:
        """The account meant: ``view``, or the running job's, or the one acted for."""
        if isinstance(view, _Acting):
            return self._current.view if self._current is not None else _acting.get()
        return view

    def _view_of(self, view: str | _Acting | None) -> str | None:
        """The open view meant (see :meth:`_owner`); None: the shared clock."""
        name = self._owner(view)
        return name if name is not None and name in self._views else None

    def now(self, view: str | _Acting | None = ACTING) -> float:
        """The simulator's time (in ``view``): a running job's due time, else the clock's."""
        if not self._views:  # every account on the shared clock (the usual case)
            current = self._current
            if current is not None and self._running_in is None:
                return current.due
            return self._clock.time()
        name = self._view_of(view)
        if self._current is not None and self._running_in == name:
            return self._current.due
        return self.time_of(name)

    def jumping(self) -> bool:
        """Whether a clock jump's pass is under way (held on a job)."""
        return self._held

    def time_of(self, view: str | None) -> float:
        """The clock of ``view`` (None, or a view not open: the shared clock)."""
        found = self._views.get(view) if view is not None else None
        return found.time() if found is not None else self._clock.time()

    def acting_for(self, view: str | None) -> contextlib.AbstractContextManager[None]:
        """Within: jobs scheduled, and ``now()``, default to ``view`` (an account)."""
        return _ActingFor(view)

    # -- clock views -------------------------------------------------------------------

    def view(self, name: str) -> ClockView | None:
        """The clock view ``name``, if open."""
        return self._views.get(name)

    def views(self) -> int:
        """How many clock views are open."""
        return len(self._views)

    def open_view(self, name: str) -> ClockView:
        """The clock view ``name``, opened (at the shared clock's time) if need be."""
        found = self._views.get(name)
        if found is None:
            found = self._views[name] = ClockView(self._clock)
            self._opened[name] = next(self._open_seq)
            # The account's jobs waiting on the shared clock move onto its view (at the
            # same due times: the view opens where the shared clock stands).
            self._merge_lane()
            shared = self._heaps[None]
            self._heaps[name] = [job for job in shared if job.view == name and not job.cancelled]
            heapq.heapify(self._heaps[name])
            if self._heaps[name]:
                self._heaps[None] = [job for job in shared if job.view != name]
                heapq.heapify(self._heaps[None])
                self._busy[name] = self._opened[name]
            self._limits[name] = self._base_limit
        return found

    def close_view(self, name: str) -> None:
        """Back to the shared clock: the view's waiting jobs move to the shared heap,
        each as far from now as it was in the view."""
        found = self._views.pop(name, None)
        if found is None:
            return
        self._busy.pop(name, None)
        del self._opened[name]
        ahead = found.ahead
        heap = self._heaps[None]
        for job in self._heaps.pop(name):
            if not job.cancelled:
                job.due -= ahead
                heap.append(job)
        heapq.heapify(heap)
        del self._limits[name]
        self._changed.set()

    def close_views(self) -> None:
        """Every account back on the shared clock."""
        for name in list(self._views):
            self.close_view(name)

    def view_range(self) -> tuple[tuple[str, float], tuple[str, float]] | None:
        """The earliest and the latest open view, each as (name, its time); None: no
        view is open. O(views): for clock moves."""
        if not self._views:
            return None
        times = [(found.time(), name) for name, found in self._views.items()]
        (low, low_name), (high, high_name) = min(times), max(times)
        return (low_name, low), (high_name, high)

    def shared_moved(self, seconds: float) -> None:
        """The shared clock moved by ``seconds``: every view moves with it."""
        for found in self._views.values():
            found.shift(seconds)
        self._changed.set()

    def view_moved(self) -> None:
        """A view moved: the loop's next wake-up may have changed."""
        self._changed.set()

    # -- jobs --------------------------------------------------------------------------

    def handle(self, kind: Kind, run: RunJob, alive: Callable[[Job], bool] | None = None) -> None:
        """Who runs jobs of ``kind``; ``alive`` says whether a waiting one still matters
        (stale ones are swept out when the heap grows)."""
        self._run[kind] = run
        if alive is not None:
            self._alive[kind] = alive

    def at(
        self,
        due: float,
        kind: Kind,
        key: str,
        ref: object = None,
        *,
        view: str | _Acting | None = ACTING,
    ) -> Job:
        """Run a job of ``kind`` for ``key`` when the clock (of ``view``) reaches ``due``."""
        owner = self._owner(view)
        name = owner if owner is not None and owner in self._views else None
        job = Job(due, kind, next(self._seq), key, ref, False, owner)
        heap = self._heaps[name]
        if name is None:
            lane = self._lane
            while lane and lane[0].cancelled:  # cancelled oldest first: gone in O(1)
                lane.popleft()
            if not lane or not job < lane[-1]:  # in order: the lane (see the module docs)
                first = not lane and (not heap or job < heap[0])
                lane.append(job)
                if first:
                    self._changed.set()
                if len(heap) + len(lane) > self._limits[None]:
                    self._compact(None, job)
                return job
            first = (not heap or job < heap[0]) and job < lane[0]  # (lane: not empty)
        else:
            first = not heap or job < heap[0]
        heapq.heappush(heap, job)
        if name is not None:
            self._busy[name] = self._opened[name]
        if first:
            self._changed.set()
        if len(heap) + (len(self._lane) if name is None else 0) > self._limits[name]:
            self._compact(name, job)
        return job

    def cancel(self, job: Job) -> None:
        """The job will not run (it leaves the heap when it comes up, or at a sweep)."""
        job.cancelled = True

    def cancel_where(self, kind: Kind, which: Callable[[Job], bool]) -> None:
        """Cancel every waiting job of ``kind`` that ``which`` picks (O(jobs): for resets)."""
        for heap in [*self._heaps.values(), self._lane]:
            for job in heap:
                if job.kind is kind and not job.cancelled and which(job):
                    job.cancelled = True

    def clear(self, kind: Kind | None = None) -> None:
        """Forget every job (of one kind)."""
        self._lane = deque(() if kind is None else (j for j in self._lane if j.kind is not kind))
        for name, heap in self._heaps.items():
            if kind is None:
                heap.clear()
            else:
                kept = [job for job in heap if job.kind is not kind]
                heapq.heapify(kept)
                self._heaps[name] = kept
        self._changed.set()

    def pending(self, kind: Kind | None = None) -> int:
        """Jobs waiting (cancelled ones included until they leave)."""
        return sum(
            1
            for heap in [*self._heaps.values(), self._lane]
            for job in heap
            if kind is None or job.kind is kind
        )

    def next_due(self) -> float | None:
        """The due time of the shared clock's next job."""
        heap, lane = self._heaps[None], self._lane
        while heap and heap[0].cancelled:
            heapq.heappop(heap)
        while lane and lane[0].cancelled:
            lane.popleft()
        if heap and lane:
            return min(heap[0].due, lane[0].due)
        return heap[0].due if heap else lane[0].due if lane else None

    def _wake_at(self) -> float | None:
        """When (on the shared clock) the next job of any view comes due by time alone."""
        wake = self.next_due()
        for name in list(self._busy):
            found = self._views[name]
            heap = self._heaps[name]
            while heap and heap[0].cancelled:
                heapq.heappop(heap)
            if heap and not found.stands_still():
                at = heap[0].due - found.ahead
                wake = at if wake is None else min(wake, at)
        return wake

    def _compact(self, name: str | None, new: Job | None = None) -> None:
        """Drop cancelled and stale jobs of one heap; its threshold grows with what is
        left, so a heap full of live jobs is swept at amortized O(1) per job. ``new``, the
        job being scheduled, is kept: its owner records it only once ``at`` returns, so
        until then it would look stale."""
        kept = [job for job in self._heaps[name] if not job.cancelled]
        lane = [job for job in self._lane if not job.cancelled] if name is None else []
        if self._alive:
            check = self._alive.get
            kept = [
                job
                for job in kept
                if job is new or (alive := check(job.kind)) is None or alive(job)
            ]
            lane = [
                job
                for job in lane
                if job is new or (alive := check(job.kind)) is None or alive(job)
            ]
        heapq.heapify(kept)
        self._heaps[name] = kept
        if name is None:
            self._lane = deque(lane)  # still in order: filtered, never reordered
        self._limits[name] = max(self._base_limit, 2 * (len(kept) + len(lane)))

    def _merge_lane(self) -> None:
        """Move the lane's jobs into the shared heap (before an O(jobs) change of it)."""
        if self._lane:
            heap = self._heaps[None]
            heap.extend(job for job in self._lane if not job.cancelled)
            self._lane = deque()
            heapq.heapify(heap)

    # -- running -------------------------------------------------------------------------

    def run_due(self) -> int:
        """Run every job due by now, in order, each at its own due time; how many ran.

        Each view's jobs run in due order on that view's clock; the shared clock's
        first, then each view's (again, while a job added some that are due). Nothing
        while a jump's pass is held: it runs them in order when it goes on."""
        if self._current is not None or self._held:
            return 0  # called from inside a job, or a jump is under way: that pass goes on
        if not self._busy and not self._jumping:
            # Only the shared clock's heap can hold jobs: nothing to do unless its first
            # is due (what ``_pass`` would find, without building its list of views).
            heap, lane = self._heaps[None], self._lane
            now = self._clock.time()
            if (not heap or heap[0].due > now) and (not lane or lane[0].due > now):
                return 0
        return self._pass()

    def jump(self, wait: float) -> None:
        """After a clock moved: run what is due as a clock jump's pass, which waits for
        each job's awaitable (at most ``wait`` wall-clock seconds in all) before it runs
        the next job. Returns at once when it has to wait; :meth:`settled` says when the
        pass is done. A jump while another is held joins that one, within its bound (so
        jumps in a row never hold the jobs due longer than one bound each)."""
        if self._held or self._current is not None:
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
        ran, again = 0, True
        while again and not self._held:
            again = False
            for name in [None, *sorted(self._busy, key=self._busy.__getitem__)]:
                done = self._run_view(name)
                ran += done
                again = again or done > 0
                if self._held:
                    break
        if not self._held and self._jumping:  # nothing more due: the jump is done
            self._jumping = False
            self._settled.set()
        self.ran += ran
        return ran

    def _run_view(self, name: str | None) -> int:
        ran = 0
        while True:
            heap = self._heaps.get(name)  # a job may have compacted it, or closed the view
            lane = self._lane if name is None else None
            if lane:
                if heap and heap[0] < lane[0]:
                    job = heap[0]
                    if job.due > self.time_of(name):
                        return ran
                    heapq.heappop(heap)
                else:
                    job = lane[0]
                    if job.due > self.time_of(name):
                        return ran
                    lane.popleft()
            else:
                if not heap:
                    if name is not None:
                        self._busy.pop(name, None)  # nothing waits on it: passes skip it
                    return ran
                job = heap[0]
                if job.due > self.time_of(name):
                    return ran
                heapq.heappop(heap)
            if job.cancelled:
                continue
            run = self._run.get(job.kind)
            if run is None:
                continue
            self._current, self._running_in = job, name
            outcome: Awaitable[object] | None = None
            try:
                outcome = run(job)
            except Exception:  # one job's failure never stops the others
                log.exception("scheduled %s job for %s failed", job.kind.name, job.key)
            finally:
                self._current = self._running_in = None
            ran += 1
            if outcome is not None and self._jumping and self._hold(outcome):
                return ran

    def _hold(self, outcome: Awaitable[object]) -> bool:
        """Hold the jump's pass until ``outcome`` is done (within the jump's wall-clock
        bound); False if there is nothing to wait for."""
        left = self._wait_until - time.monotonic()
        future = asyncio.ensure_future(outcome)
        if left <= 0 or future.done():
            return False
        self._held = True
        waiter = asyncio.ensure_future(asyncio.wait_for(asyncio.shield(future), left))
        waiter.add_done_callback(self._resume)
        return True

    def _resume(self, waiter: asyncio.Future[object]) -> None:
        if not waiter.cancelled():
            waiter.exception()  # (a timeout: the job goes on without the pass)
        self._held = False
        self._pass()

    async def run(self) -> None:
        """Run forever: each job when its clock reaches it (at once after a jump)."""
        while True:
            self.run_due()
            self._changed.clear()
            if self._held:  # a jump's pass goes on by itself
                await self.settled()
                continue
            await self._clock.wait_for_change(self._wake_at(), self._changed)
