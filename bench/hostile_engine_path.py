"""CPU per call of the engine's per-request path, in-process (no HTTP).

What ``POST /otp`` (``Simulator.create_otp`` + ``Otp.to_api``), ``GET /otp/{id}`` and
``POST /otp/{id}`` with a wrong PIN (each ``fault_for`` first, as the handlers do) cost
inside the simulator, with the listeners a
served app attaches (SMS log line, websocket hub, callback dispatcher, metrics) and
default settings:

    python bench/hostile_engine_path.py [--count 5000] [--rounds 5] [--profile]
        [--prefill 100000] 2>/dev/null

``--prefill 100000`` first creates that many OTPs through the engine, so the store,
the scheduler's heap and the pending expiries are all at the default cap (the steady
state of a server under load for more than ~30 s; ``bench/prefilled.py`` fills only
the store).

Prints the lowest CPU microseconds per call over the rounds (``time.process_time``;
the lowest is the least disturbed by other load on a shared machine). ``--profile``
adds a cProfile of the creates (``SORT=cumulative TOP=60`` to change the listing).
Bounded (count x rounds calls of each verb); no network: the app is never served.
Run with ``2>/dev/null``: the SMS log lines go to stderr, as ``otpsim serve``'s do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import sys
import time

from otpsim import logs
from otpsim.config import Settings
from otpsim.errors import ProviderError
from otpsim.server.app import create_app
from otpsim.server.keys import DISPATCHER, HUB, SIM

BODY = {"phoneNumber": "+33612345678"}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--prefill", type=int, default=0, help="OTPs created first (100000: at the cap)"
    )
    args = parser.parse_args()
    logs.configure("info", "text")  # the SMS log line, as `otpsim serve` writes it
    app = create_app(Settings())
    sim, dispatcher, hub = app[SIM], app[DISPATCHER], app[HUB]
    await dispatcher.start()
    hub.start()
    create: list[float] = []
    get: list[float] = []
    verify: list[float] = []
    for _ in range(args.prefill):  # through the engine: store, scheduler, pending expiries
        await sim.create_otp(BODY, account="bench")
    prof = cProfile.Profile() if args.profile else None
    for _ in range(args.rounds):
        ids = []
        t0 = time.process_time()
        if prof:
            prof.enable()
        for _ in range(args.count):
            otp = await sim.create_otp(BODY, account="bench")
            otp.to_api()
            ids.append(otp.otp_id)
        if prof:
            prof.disable()
        create.append((time.process_time() - t0) / args.count * 1e6)
        t0 = time.process_time()
        for otp_id in ids:  # as the handlers call it: a scenario fault first, then the verb
            await sim.fault_for("status", account="bench", subject=otp_id)
            sim.get_otp(otp_id, account="bench").to_api()
        get.append((time.process_time() - t0) / args.count * 1e6)
        t0 = time.process_time()
        for otp_id in ids:
            await sim.fault_for("verify", account="bench", subject=otp_id)
            with contextlib.suppress(ProviderError):  # a wrong PIN: the usual refusal
                sim.verify(otp_id, {"pin": "000000"}, account="bench")
        verify.append((time.process_time() - t0) / args.count * 1e6)
    await hub.close()
    await dispatcher.close()
    rounds = " ".join(f"{x:.1f}" for x in create)
    print(f"create_otp+to_api  {min(create):7.2f} us/call  (rounds: {rounds})")
    print(f"get_otp+to_api     {min(get):7.2f} us/call")
    print(f"verify (wrong PIN) {min(verify):7.2f} us/call")
    if prof:
        top = int(os.environ.get("TOP", "30"))
        pstats.Stats(prof, stream=sys.stdout).sort_stats(
            os.environ.get("SORT", "tottime")
        ).print_stats(top)


if __name__ == "__main__":
    asyncio.run(main())
