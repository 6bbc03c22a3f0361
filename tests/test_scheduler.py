"""The one scheduler: due order, due times, deterministic ties, stale jobs, failures."""

from __future__ import annotations

import asyncio
import logging

import pytest

from otpsim.clock import Clock
from otpsim.engine.scheduler import Job, Kind, Scheduler


def scheduler_at(start: float = 1000.0) -> tuple[Clock, Scheduler, list[tuple[str, float, float]]]:
    clock = Clock(start=start, frozen=True)
    scheduler = Scheduler(clock)
    ran: list[tuple[str, float, float]] = []  # (key, due, what now() read while it ran)

    def record(job: Job) -> None:
        ran.append((job.key, job.due, scheduler.now()))

    for kind in Kind:
        scheduler.handle(kind, record)
    return clock, scheduler, ran


def test_a_jump_runs_every_due_job_in_due_order_each_at_its_due_time() -> None:
    clock, scheduler, ran = scheduler_at()
    scheduler.at(1300, Kind.EXPIRY, "expiry")
    scheduler.at(1030, Kind.SMS, "sms")
    scheduler.at(1200, Kind.TOKEN, "token")
    scheduler.at(1005, Kind.CALLBACK, "retry")
    scheduler.at(1500, Kind.EXPIRY, "later")
    clock.advance(400)
    assert scheduler.run_due() == 4
    assert ran == [
        ("retry", 1005, 1005),
        ("sms", 1030, 1030),
        ("token", 1200, 1200),
        ("expiry", 1300, 1300),
    ]
    assert scheduler.now() == 1400  # no job running: the clock
    assert scheduler.next_due() == 1500


def test_ties_go_by_kind_then_by_order_of_scheduling() -> None:
    clock, scheduler, ran = scheduler_at()
    scheduler.at(1010, Kind.TOKEN, "token")
    scheduler.at(1010, Kind.EXPIRY, "expiry-1")
    scheduler.at(1010, Kind.SMS, "sms")
    scheduler.at(1010, Kind.EXPIRY, "expiry-2")
    clock.advance(10)
    scheduler.run_due()
    assert [key for key, _, _ in ran] == ["sms", "expiry-1", "expiry-2", "token"]


def test_a_job_scheduled_by_a_job_runs_in_the_same_pass_when_due() -> None:
    clock = Clock(start=0.0, frozen=True)
    scheduler = Scheduler(clock)
    ran: list[tuple[str, float]] = []

    def expire(job: Job) -> None:
        ran.append((job.key, job.due))
        scheduler.at(scheduler.now() + 0, Kind.CALLBACK, "its callback")  # due at once
        scheduler.at(scheduler.now() + 5, Kind.CALLBACK, "its retry")

    scheduler.handle(Kind.EXPIRY, expire)
    scheduler.handle(Kind.CALLBACK, lambda job: ran.append((job.key, job.due)))
    scheduler.handle(Kind.SMS, lambda job: ran.append((job.key, job.due)))
    scheduler.at(300, Kind.EXPIRY, "otp")
    scheduler.at(303, Kind.SMS, "sms")
    clock.advance(400)
    scheduler.run_due()
    assert ran == [("otp", 300), ("its callback", 300), ("sms", 303), ("its retry", 305)]


def test_cancelled_and_stale_jobs_never_run_and_are_swept_out() -> None:
    clock = Clock(start=0.0, frozen=True)
    scheduler = Scheduler(clock, compact_above=10)
    live = {"keep"}
    ran: list[str] = []
    scheduler.handle(Kind.EXPIRY, lambda job: ran.append(job.key), lambda job: job.key in live)
    cancelled = scheduler.at(1, Kind.EXPIRY, "cancelled")
    scheduler.cancel(cancelled)
    for n in range(20):
        scheduler.at(2 + n, Kind.EXPIRY, "keep" if n == 0 else f"stale-{n}")
    assert scheduler.pending() <= 11  # swept when it outgrew its bound
    clock.advance(100)
    scheduler.run_due()
    assert "cancelled" not in ran
    assert ran[0] == "keep"


def test_a_failing_job_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock(start=0.0, frozen=True)
    scheduler = Scheduler(clock)
    ran: list[str] = []

    def run(job: Job) -> None:
        if job.key == "bad":
            raise RuntimeError("boom")
        ran.append(job.key)

    scheduler.handle(Kind.SMS, run)
    for key in ("a", "bad", "b"):
        scheduler.at(1, Kind.SMS, key)
    clock.advance(1)
    with caplog.at_level(logging.ERROR):
        assert scheduler.run_due() == 3
    assert ran == ["a", "b"]
    assert "SMS job for bad failed" in caplog.text


async def test_the_loop_runs_jobs_when_the_clock_reaches_them() -> None:
    clock = Clock(start=0.0, frozen=True)
    scheduler = Scheduler(clock)
    ran: list[float] = []
    scheduler.handle(Kind.EXPIRY, lambda job: ran.append(scheduler.now()))
    scheduler.at(60, Kind.EXPIRY, "otp")
    loop = asyncio.create_task(scheduler.run())
    try:
        await asyncio.sleep(0)
        clock.advance(90)  # no one calls run_due: the loop wakes on the move
        for _ in range(100):
            if ran:
                break
            await asyncio.sleep(0.01)
        assert ran == [60]
    finally:
        loop.cancel()


# -- clock views: an account's own clock ------------------------------------------------


def test_a_views_jobs_run_on_its_own_clock_in_due_order_each_at_its_due_time() -> None:
    _, scheduler, ran = scheduler_at()
    alice = scheduler.open_view("alice")
    scheduler.open_view("bob")
    scheduler.at(1300, Kind.EXPIRY, "alice-expiry", view="alice")
    scheduler.at(1030, Kind.SMS, "alice-sms", view="alice")
    scheduler.at(1300, Kind.EXPIRY, "bob-expiry", view="bob")
    with scheduler.acting_for("alice"):
        scheduler.at(1200, Kind.TOKEN, "alice-token")  # the view acted for
        assert scheduler.now() == 1000
    alice.advance(400)
    assert scheduler.run_due() == 3
    assert ran == [
        ("alice-sms", 1030, 1030),
        ("alice-token", 1200, 1200),
        ("alice-expiry", 1300, 1300),
    ]
    assert scheduler.now("alice") == 1400
    assert scheduler.now() == scheduler.now("bob") == 1000  # nobody else moved


def test_a_job_run_on_a_view_schedules_on_that_view() -> None:
    clock = Clock(start=0.0, frozen=True)
    scheduler = Scheduler(clock)
    seen: list[tuple[str, str | None, float]] = []

    def expire(job: Job) -> None:
        seen.append((job.key, job.view, scheduler.now()))
        if job.kind is Kind.EXPIRY:
            scheduler.at(scheduler.now(), Kind.CALLBACK, "its callback")

    scheduler.handle(Kind.EXPIRY, expire)
    scheduler.handle(Kind.CALLBACK, expire)
    view = scheduler.open_view("alice")
    scheduler.at(300, Kind.EXPIRY, "expiry", view="alice")
    view.advance(400)
    scheduler.run_due()
    assert seen == [("expiry", "alice", 300), ("its callback", "alice", 300)]


def test_a_shared_move_moves_every_view_and_closing_a_view_keeps_its_jobs() -> None:
    clock, scheduler, ran = scheduler_at()
    running = scheduler.open_view("running")
    frozen = scheduler.open_view("frozen")
    running.advance(100)
    frozen.freeze(True)
    clock.advance(50)
    scheduler.shared_moved(50)
    assert (scheduler.now("running"), scheduler.now("frozen")) == (1150, 1050)
    scheduler.at(1250, Kind.TOKEN, "token", view="running")  # 100 s from its now
    scheduler.close_view("running")
    assert scheduler.now("running") == 1050  # a closed view is the shared clock
    clock.advance(99)
    scheduler.run_due()
    assert ran == []
    clock.advance(1)
    scheduler.run_due()
    assert ran == [("token", 1150, 1150)]


async def test_a_jump_waits_for_a_jobs_future_before_the_jobs_due_after_it() -> None:
    clock = Clock(start=1000.0, frozen=True)
    scheduler = Scheduler(clock)
    ran: list[tuple[str, float]] = []
    answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def attempt(job: Job) -> asyncio.Future[None]:
        ran.append((job.key, scheduler.now()))
        return answer  # real I/O, answered later; its outcome schedules a retry

    def record(job: Job) -> None:
        ran.append((job.key, scheduler.now()))

    scheduler.handle(Kind.CALLBACK, attempt)
    scheduler.handle(Kind.SMS, record)
    scheduler.at(1005, Kind.CALLBACK, "attempt")
    scheduler.at(1030, Kind.SMS, "sms")
    clock.advance(400)
    scheduler.jump(wait=30)
    assert ran == [("attempt", 1005)]  # held: the SMS due later waits
    assert scheduler.jumping()
    assert scheduler.now() == 1400  # a request meanwhile acts at the clock's time
    assert scheduler.run_due() == 0  # another pass leaves the jump's jobs to it
    scheduler.handle(Kind.TOKEN, record)
    scheduler.at(1010, Kind.TOKEN, "retry")  # what the answer scheduled
    answer.set_result(None)
    await asyncio.wait_for(scheduler.settled(), timeout=5)
    assert ran == [("attempt", 1005), ("retry", 1010), ("sms", 1030)]
    assert (scheduler.jumping(), scheduler.now()) == (False, 1400)


async def test_a_jump_waits_a_bounded_time_then_runs_on() -> None:
    clock = Clock(start=1000.0, frozen=True)
    scheduler = Scheduler(clock)
    ran: list[str] = []
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def hangs(job: Job) -> asyncio.Future[None]:
        ran.append(job.key)
        return never  # a receiver that never answers

    scheduler.handle(Kind.CALLBACK, hangs)
    for due in range(1001, 1011):
        scheduler.at(due, Kind.CALLBACK, f"attempt-{due}")
    clock.advance(400)
    scheduler.jump(wait=0.2)  # in all, not per job
    await asyncio.wait_for(scheduler.settled(), timeout=5)
    assert ran == [f"attempt-{due}" for due in range(1001, 1011)]  # every one, in order
    assert not never.done()  # (still going: its outcome is recorded whenever it comes)


async def test_outside_a_jump_a_jobs_future_is_not_waited_for() -> None:
    clock = Clock(start=1000.0, frozen=True)
    scheduler = Scheduler(clock)
    ran: list[str] = []
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def attempt(job: Job) -> asyncio.Future[None]:
        ran.append(job.key)
        return never

    scheduler.handle(Kind.CALLBACK, attempt)
    scheduler.at(1001, Kind.CALLBACK, "a")
    scheduler.at(1002, Kind.CALLBACK, "b")
    clock.advance(10)
    assert scheduler.run_due() == 2  # the real-time loop: time does not wait for I/O
    assert ran == ["a", "b"]


def test_a_pass_looks_only_at_views_with_jobs_waiting() -> None:
    # A bystander's request runs a pass: with 1,000 idle views it must not walk them all.
    clock, scheduler, ran = scheduler_at()
    for i in range(1000):
        scheduler.open_view(f"idle-{i}")
    scheduler.open_view("late")
    scheduler.open_view("early")
    scheduler.at(1010, Kind.SMS, "early-sms", view="early")
    scheduler.at(1010, Kind.SMS, "late-sms", view="late")  # opened first: runs first
    looked: list[str | None] = []
    walk = scheduler._run_view

    def counting(name: str | None) -> int:
        looked.append(name)
        return walk(name)

    scheduler._run_view = counting  # type: ignore[method-assign]
    scheduler.run_due()
    assert len(looked) <= 10, f"a pass with nothing due looked at {len(looked)} views"
    looked.clear()
    clock.advance(20)
    assert scheduler.run_due() == 2
    assert [key for key, _, _ in ran] == ["late-sms", "early-sms"]
    assert len(looked) <= 10
    looked.clear()
    scheduler.run_due()  # their heaps are empty now: nothing to look at
    assert len(looked) <= 3


def test_jobs_cancelled_oldest_first_leave_at_once_without_a_sweep() -> None:
    """Expiries come due in creation order (one TTL); the pending cap cancels the oldest.
    Those leave as the next job is scheduled, so they never pile up for a sweep."""
    clock = Clock(start=0.0, frozen=True)
    scheduler = Scheduler(clock, compact_above=1_000_000)
    ran: list[str] = []
    scheduler.handle(Kind.EXPIRY, lambda job: ran.append(job.key))
    waiting: list[Job] = []
    for n in range(500):
        waiting.append(scheduler.at(300 + n, Kind.EXPIRY, f"otp-{n}"))
        if len(waiting) > 10:
            scheduler.cancel(waiting.pop(0))
    assert scheduler.pending(Kind.EXPIRY) <= 11
    clock.advance(1000)
    scheduler.run_due()
    assert ran == [f"otp-{n}" for n in range(490, 500)]


def test_in_order_and_out_of_order_jobs_run_in_one_due_order() -> None:
    """Jobs scheduled after the latest (the usual expiry) and before it (an SMS, a
    shorter TTL, a clock set back) interleave by (due, kind, order of scheduling)."""
    clock, scheduler, ran = scheduler_at(0.0)
    plan = [
        (300, Kind.EXPIRY, "e1"),
        (5, Kind.SMS, "s1"),
        (301, Kind.EXPIRY, "e2"),
        (301, Kind.SMS, "s2"),  # same due, lower kind: before e2
        (301, Kind.EXPIRY, "e3"),
        (120, Kind.EXPIRY, "short"),
        (301, Kind.TOKEN, "t1"),
        (400, Kind.EXPIRY, "e4"),
        (350, Kind.CALLBACK, "c1"),
    ]
    jobs = {key: scheduler.at(due, kind, key) for due, kind, key in plan}
    scheduler.cancel(jobs["e3"])
    assert scheduler.next_due() == 5
    clock.advance(1000)
    scheduler.run_due()
    assert [key for key, _, _ in ran] == ["s1", "short", "e1", "s2", "e2", "t1", "c1", "e4"]
    assert scheduler.next_due() is None
    assert scheduler.pending() == 0


@pytest.mark.parametrize("ttls", ["one lifetime (the lane)", "mixed lifetimes (the heap)"])
def test_the_job_whose_scheduling_starts_a_sweep_is_kept(ttls: str) -> None:
    """Owners record a job after ``at`` returns it (an OTP's expiry, a callback's
    attempt): the sweep that ``at`` starts must not judge that new job stale."""
    clock = Clock(start=1000.0, frozen=True)
    scheduler = Scheduler(clock, compact_above=64)
    expiring: dict[str, Job] = {}
    ran: list[str] = []
    scheduler.handle(
        Kind.EXPIRY, lambda job: ran.append(job.key), lambda job: expiring.get(job.key) is job
    )
    for i in range(200):  # past the sweep's threshold, and past its next (doubled) one
        due = 1300.0 if ttls.startswith("one") else 1300.0 - (i % 7)
        expiring[f"otp{i}"] = scheduler.at(due, Kind.EXPIRY, f"otp{i}")
    clock.advance(400)
    scheduler.run_due()
    assert sorted(ran) == sorted(expiring)
