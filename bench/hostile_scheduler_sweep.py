"""The scheduler's sweep of stale jobs under a create flood, in-process (no HTTP).

Round 4 attributed an ~85 ms pause once per ~100,000 creates to the scheduler's sweep
(``Scheduler._compact``: the heap of 2 x ``max_messages`` jobs filtered and heapified
again, half of them expiries the pending cap had cancelled). This creates ``--count``
OTPs through the engine with default settings (``max_messages`` 100,000; the SMS log
line at info, the live hub, the dispatcher, as ``otpsim serve`` attaches them) and
prints how many sweeps ran, their CPU (the longest and in all), the slowest single
create, and the jobs waiting at the end:

    python bench/hostile_scheduler_sweep.py [--count 250000] 2>/dev/null

The cyclic GC is off while it runs (its own pauses are attributed elsewhere:
docs/benchmarks.md "latency spikes"), so the slowest create (CPU: time the machine's
other load takes is not counted) is the engine's own.
Bounded (count creates); no network: the app is never served.
Old code: ``PYTHONPATH=<old checkout> python bench/hostile_scheduler_sweep.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from typing import Any

from otpsim import logs
from otpsim.config import Settings
from otpsim.server.app import create_app
from otpsim.server.keys import DISPATCHER, HUB, SIM

BODY = {"phoneNumber": "+33612345678"}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=250_000)
    args = parser.parse_args()
    logs.configure("info", "text")
    app = create_app(Settings())
    sim, dispatcher, hub = app[SIM], app[DISPATCHER], app[HUB]
    await dispatcher.start()
    hub.start()
    scheduler: Any = sim.timers  # the Scheduler itself: its sweep is timed below
    sweeps: list[float] = []
    compact = scheduler._compact

    def timed_compact(name: str | None) -> None:
        t0 = time.process_time()
        compact(name)
        sweeps.append((time.process_time() - t0) * 1e3)

    scheduler._compact = timed_compact
    gc.disable()
    worst = 0.0
    t_all = time.process_time()
    for _ in range(args.count):
        t0 = time.process_time()
        otp = await sim.create_otp(BODY, account="bench")
        otp.to_api()
        worst = max(worst, time.process_time() - t0)
    total = time.process_time() - t_all
    gc.enable()
    await hub.close()
    await dispatcher.close()
    longest = max(sweeps, default=0.0)
    print(f"creates              {args.count}  ({total / args.count * 1e6:.1f} us CPU each)")
    print(
        f"sweeps               {len(sweeps)}  (longest {longest:.1f} ms, {sum(sweeps):.1f} ms all)"
    )
    print(f"slowest create       {worst * 1e3:.1f} ms CPU")
    print(f"jobs waiting at end  {scheduler.pending()}")


if __name__ == "__main__":
    asyncio.run(main())
