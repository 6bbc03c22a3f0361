"""``otpsim serve``'s garbage collection: no full collection while it is busy, every
long-lived cycle freed once it is idle, the process's collector restored afterwards."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import sys
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest

from otpsim.gcpolicy import (
    CYCLES_MADE,
    GARBAGE_BUDGET_BLOCKS,
    GARBAGE_BUDGET_SHARE,
    collect_garbage_on_schedule,
)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def garbage_cycle_in_the_old_generation() -> tuple[weakref.ref[Node], asyncio.Event]:
    """A reference cycle that lived long enough to reach the old generation, then was
    dropped: only a full collection frees it. Returns a reference to it, and an event
    set when it is freed."""
    first, second = Node(), Node()
    first.other, second.other = second, first
    gc.collect(1)  # survivors of a middle collection move to the old generation
    freed = asyncio.Event()
    weakref.finalize(first, freed.set)
    return weakref.ref(first), freed


@contextlib.asynccontextmanager
async def policy(every: float, **kwargs: Any) -> AsyncIterator[None]:
    task = asyncio.create_task(collect_garbage_on_schedule(every=every, **kwargs))
    await asyncio.sleep(0)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def busy(seconds: float) -> None:
    """Keep the event loop's thread on the CPU, as a server under load does."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        stop = time.monotonic() + 0.002
        while time.monotonic() < stop:
            pass
        await asyncio.sleep(0)


async def test_a_busy_server_runs_no_full_collection() -> None:
    # Busy by the policy's CPU clock: on a loaded machine this process may get under 5 %
    # of a CPU for a 0.05 s check while it spins, which would look idle.
    async with policy(every=0.05, cpu=time.monotonic):
        dropped, _ = garbage_cycle_in_the_old_generation()
        full = gc.get_stats()[2]["collections"]
        await busy(0.6)  # twelve times `every`: a timer alone would have collected
        assert gc.get_stats()[2]["collections"] == full
        assert dropped() is not None


async def test_garbage_cycles_are_freed_once_the_server_is_idle() -> None:
    async with policy(every=0.05):
        await busy(0.2)
        dropped, freed = garbage_cycle_in_the_old_generation()
        await asyncio.wait_for(freed.wait(), 10)  # generous: one idle check is 0.05 s
        assert dropped() is None


async def test_full_collections_run_at_the_latest_under_continuous_load() -> None:
    task = asyncio.create_task(collect_garbage_on_schedule(every=0.05, at_latest=0.2))
    try:
        full = gc.get_stats()[2]["collections"]
        await busy(1.0)
        assert gc.get_stats()[2]["collections"] > full
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Session:
    """A reference cycle of many small objects, as a closed websocket session leaves."""

    def __init__(self) -> None:
        self.me = self
        self.parts = [Node() for _ in range(1000)]


async def test_a_busy_server_frees_garbage_cycles_once_they_add_up() -> None:
    """Cycles dropped under continuous load (websocket sessions, each a web of objects
    that refer to each other) reach the old generation; a busy server runs no full
    collection for its pauses' sake, but not at the price of memory growing without
    bound until the ten-minute backstop: past a budget of growth, it collects."""
    async with policy(every=0.05):
        await busy(0.2)
        freed = asyncio.Event()
        budget = max(GARBAGE_BUDGET_BLOCKS, int(sys.getallocatedblocks() * GARBAGE_BUDGET_SHARE))
        blobs = [Session() for _ in range(budget // 1000 + 100)]  # ~1,000 blocks each: past it
        dropped = [weakref.finalize(blob, freed.set) for blob in blobs]
        gc.collect(1)  # alive long enough to reach the old generation, as sessions do
        for _ in range(2 * CYCLES_MADE):  # and short-lived ones, freed young: the sign
            brief = Node()  # that cycles are being made
            brief.other = brief
        del brief
        gc.collect(0)
        del blobs  # now garbage that only a full collection frees
        assert all(f.alive for f in dropped)
        deadline = time.monotonic() + 10  # generous: the check runs every 0.05 s
        while not freed.is_set() and time.monotonic() < deadline:
            await busy(0.05)  # never idle: only the memory budget can trigger it
        assert not any(f.alive for f in dropped)


async def test_a_store_filling_up_under_load_pays_no_full_collection() -> None:
    """Growth that makes no cycles (records kept in a store, as POST /otp does) is not
    garbage: past the memory budget, a busy server still runs no full collection."""
    async with policy(every=0.05, cpu=time.monotonic):  # busy, however loaded the machine
        await busy(0.1)
        full = gc.get_stats()[2]["collections"]
        budget = max(GARBAGE_BUDGET_BLOCKS, int(sys.getallocatedblocks() * GARBAGE_BUDGET_SHARE))
        store = {}
        for n in range(budget // 2 + 50_000):  # two blocks a record: past the budget
            store[n] = [n]
            if n % 5_000 == 0:
                await busy(0.002)
        await busy(0.3)  # six checks
        assert gc.get_stats()[2]["collections"] == full
        assert len(store) > budget // 2


async def test_young_collections_keep_up_with_a_store_at_its_cap() -> None:
    """At its retention cap a store frees a record for each one it keeps, so the
    collector's count (allocations minus frees) stays flat and CPython's own trigger
    for a young collection never fires, while every record kept since the last one
    waits in the young generation to be walked: at the 100,000 cap under load, young
    and middle collections of 50-150 ms every few seconds. A busy server walks them
    on a short cadence instead: the young generations never hold more than a moment's
    worth of records."""
    kept = collections.deque(Node() for _ in range(100_000))  # the store, at its cap
    gc.collect(1)  # its records are old
    async with policy(every=0.05):
        largest = 0
        for _ in range(300):  # 150,000 records through the store: every record replaced
            for _ in range(500):
                kept.append(Node())
                kept.popleft()  # evicted: allocations minus frees stay flat
            largest = max(largest, len(gc.get_objects(0)) + len(gc.get_objects(1)))
            await busy(0.002)
        # Generous: a young collection at every check (0.05 s: at most ~25 steps of 500
        # records in between); without the cadence, every record kept since the start.
        assert largest < 40_000, largest


async def test_the_collector_is_restored_when_the_server_stops() -> None:
    before = gc.get_threshold()
    async with policy(every=60):
        assert gc.get_threshold()[2] >= 1_000_000  # CPython's own trigger is off meanwhile
        assert gc.get_threshold()[1] == 0  # middle collections after each young one
        assert gc.get_freeze_count() > 0  # what the server started with is frozen
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0  # an embedding process frees its own cycles again


@pytest.fixture(autouse=True)
def _no_frozen_leftovers() -> None:
    assert gc.get_freeze_count() == 0
