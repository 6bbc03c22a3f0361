"""How ``otpsim serve`` runs the garbage collector: no full collection while it is busy.

A full collection visits every object the collector tracks; with the store at its cap
(100,000 OTPs, their messages and their expiry jobs: ~450,000 objects) that is one
pause of 100-400 ms on the event loop, felt by every connection. CPython starts one
whenever the objects promoted since the last reach a quarter of the old generation:
at a steady churn, every few seconds. Requests make no reference cycles (young
collections find nothing to free under load), so full collections only matter for
the rare long-lived cycle, and can wait for a quiet moment:

* at startup, everything built so far (modules, the app, a recovered or prefilled
  store) is frozen out of the collector's walks (``gc.freeze``): it lives as long as
  the server, and the records among it are still freed by reference counting when
  they are evicted;
* CPython's own trigger for full collections is off; young collections go on, each
  one small: at the cap every insert evicts, and each freed record lowers the young
  generation's count, so a young collection comes only after thousands of survivors
  (1-2 ms), and CPython's middle collection, after ten of them, walks ten times that
  (20-37 ms measured). With a middle threshold of 0 young and middle collections
  alternate, so each walks the survivors of one young collection at most (the same
  total work, in pauses a tenth as long);
* while the server is busy (the last check interval was not idle), a young and middle
  collection (``gc.collect(1)``) every ``young_every`` seconds (0.1): at the cap a
  store frees a record for each one it keeps, so the collector's count (allocations
  minus frees) stays flat and CPython's own trigger does not fire for seconds, while
  every record kept meanwhile waits in the young generation: measured at the 100,000
  cap under load, young and middle collections of 50-150 ms every 5-7 s. On the
  cadence each walks 0.1 s of requests' survivors once (they go straight to the old
  generation) and the requests in flight: pauses of ~1-3 ms, and less collector CPU
  than before (each survivor walked once, not twice). Every 20 ms was tried: pauses
  no shorter than ~0.7 ms (the 50 requests in flight are walked each time) at twice
  the CPU. None when CPython's own trigger fired meanwhile (a young store, filling,
  makes it fire every few dozen requests): no second walk. An idle server is not
  woken for them;
* a full collection runs at most once every ``every`` seconds (60), when the server
  has been idle for a check interval (its process used < 5 % of a CPU), and otherwise
  at the latest every ``at_latest`` seconds (600) even under continuous load, or
  sooner, busy or not, once the memory blocks Python's allocator holds
  (``sys.getallocatedblocks``, ~0.1 ms to read) have grown by as many as the last full
  collection left, or by ``GARBAGE_BUDGET_BLOCKS`` (250,000: ~16-30 MB of small objects)
  if that is more: the heap may at most double between collections (Go's default
  policy, GOGC=100). Cycles do come under load: a websocket session is a web of objects
  that refer to each other, and a closed one that lived past a young collection waits
  in the old generation; without the budget, 8 clients opening and closing the live
  feed grew RSS 52 -> 79 MB in 45 s and on. The count is of live blocks (it falls when
  a collection frees some), so the budget does not ratchet up as resident memory would
  (the allocator keeps freed memory for reuse); its base is the fewest blocks held since
  the last full collection (a reset that empties a full store lowers it). The budget
  counts only once cycles are being made (young and middle collections have freed
  ``CYCLES_MADE``, 1,000 objects in cycles, since the last full one; a few at startup
  do not count): a store filling up makes none, so it pays no pause for its growth
  (with the budget always on, filling to the 100,000 cap under load ran full
  collections of 48 and 139 ms; with a quarter instead of a doubling, one every ~4 s,
  57 to 279 ms and growing).

Only ``otpsim serve`` does this: embedded in a test process, the process's collector
is left alone.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Callable

FULL_COLLECTION_EVERY = 60.0  # seconds: at most one full collection this often ...
FULL_COLLECTION_AT_LATEST = 600.0  # ... and at least one this often, even when busy
GARBAGE_BUDGET_SHARE = 1.0  # ... and one, busy or not, once the allocator's blocks grew by this
GARBAGE_BUDGET_BLOCKS = 250_000  # share of what the last one left, or by this many if more
CYCLES_MADE = 1_000  # ... counted once young collections freed this many objects in cycles
IDLE_CPU_SHARE = 0.05  # a check interval with less process CPU than this counts as idle
CHECK_EVERY = 1.0  # seconds between looks at the CPU (at most ``every``)
YOUNG_EVERY = 0.1  # seconds between young (and middle) collections while busy


async def collect_garbage_on_schedule(
    every: float = FULL_COLLECTION_EVERY,
    *,
    at_latest: float = FULL_COLLECTION_AT_LATEST,
    cpu: Callable[[], float] = time.process_time,
    blocks: Callable[[], int] = sys.getallocatedblocks,
    young_every: float | None = None,
) -> None:
    """Run until cancelled: young collections on a cadence while busy (every
    ``young_every`` seconds, by default ``YOUNG_EVERY`` as it is when called), full ones
    in idle moments (see the module docs). Restores the collector's thresholds and
    unfreezes what it froze when cancelled."""
    young_every = YOUNG_EVERY if young_every is None else young_every
    check = min(every, CHECK_EVERY)
    young, middle, old = gc.get_threshold()
    gc.set_threshold(young, 0, 1_000_000_000)
    gc.freeze()
    try:
        last_full = last_check = time.monotonic()
        last_cpu = cpu()
        floor = blocks()  # the fewest blocks seen since the last full collection
        cycles = _cycles_freed()
        busy = False
        ran = _young_collections()
        while True:
            await asyncio.sleep(min(young_every, check) if busy else check)
            if busy:
                if _young_collections() == ran:  # CPython's own trigger has not fired
                    gc.collect(1)  # the young generations' survivors, walked once
                ran = _young_collections()
                if time.monotonic() - last_check < check:
                    continue
            now, used = time.monotonic(), cpu()
            idle = used - last_cpu < IDLE_CPU_SHARE * (now - last_check)
            busy, last_check = not idle, now
            promoted = gc.get_count()[2] > 0  # young collections since the last full one
            since = now - last_full
            # Only once cycles are being made (young collections free some) does growth
            # count as garbage: a store filling up makes none, and pays no pause for it.
            held = blocks()
            floor = min(floor, held)  # freed by reference counting (a reset): a lower base
            grown = _cycles_freed() - cycles >= CYCLES_MADE and held > _budget(floor)
            if (idle and promoted and since >= every) or since >= at_latest or grown:
                gc.collect()
                last_full = time.monotonic()
                floor, cycles = blocks(), _cycles_freed()
            last_cpu = cpu()
    finally:
        gc.set_threshold(young, middle, old)
        gc.unfreeze()


def _young_collections() -> int:
    """Young and middle collections so far (CPython's own and ours)."""
    young, middle, _ = gc.get_stats()
    return int(young["collections"]) + int(middle["collections"])


def _cycles_freed() -> int:
    """Objects the young and middle collections have freed so far (cycles only: what
    reference counting frees is not counted)."""
    young, middle, _ = gc.get_stats()
    return int(young["collected"]) + int(middle["collected"])


def _budget(blocks: int) -> int:
    """The allocated-block count past which a full collection runs even under load."""
    return blocks + max(GARBAGE_BUDGET_BLOCKS, int(blocks * GARBAGE_BUDGET_SHARE))
