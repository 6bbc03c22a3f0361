"""Latency spikes and the tail: what stalls the event loop, and p50/p99/max under wrk.

    python bench/tail.py probe [--seconds 75] [--count 100000] [@DIR]
    python bench/tail.py latency [--seconds 8] [--rounds 2] [old=@DIR ...]
    python bench/tail.py rss [--cap 20000] [--rounds 6]

``probe``: ``otpsim serve`` with its store prefilled to COUNT (bench/prefilled.py), a
probe inside the server (gc.callbacks timing every collection per generation with the
objects collected, the number of GC-tracked objects sampled every few seconds, the
event loop's lag from a 5 ms periodic timer, the scheduler's heap compactions timed),
under ``wrk -c50`` for SECONDS. Prints every loop stall above 20 ms with what ran in it.

``latency``: p50 / p99 / max (wrk --latency) at -c50 and -c10, on a young store and on
one at its cap, interleaved between this checkout and any ``name=@DIR`` given.

``rss``: the server's RSS at its cap (``--max-messages CAP``, prefilled) while wrk
churns the store ROUNDS times over: flat if nothing leaks (full collections are
deferred under load, so a leaking cycle would show here).

Server pinned to CPU 0, wrk to CPU 1, 127.0.0.1 only; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import Server, free_port, pinned  # noqa: E402  (bench/ is not a package)

POST_LUA = """wrk.method = "POST"
wrk.headers["X-API-KEY"] = "bench"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"phoneNumber": "+33612345678"}'
"""
STALL_MS = 40.0


# -- the probe, inside the server ----------------------------------------------------------


def install_probe(out_path: str) -> None:
    """Patch the server process: record GC pauses, loop lag and heap compactions."""
    from otpsim import cli
    from otpsim.engine import scheduler as scheduler_module

    t0 = 0.0  # perf_counter is CLOCK_MONOTONIC: the same clock in the bench's process
    events: list[dict[str, Any]] = []
    started: dict[str, float] = {}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        if phase == "start":
            started["gc"], started["gc_cpu"] = now, cpu
            return
        events.append(
            {
                "what": f"gc{info['generation']}",
                "at": started.get("gc", now) - t0,
                "ms": (now - started.get("gc", now)) * 1000,
                "cpu_ms": (cpu - started.get("gc_cpu", cpu)) * 1000,
                "collected": info["collected"],
            }
        )

    gc.callbacks.append(on_gc)
    compact = scheduler_module.Scheduler._compact

    def timed_compact(self: Any, name: str | None) -> None:
        before = len(self._heaps[name])
        begin, cpu = time.perf_counter(), time.thread_time()
        compact(self, name)
        end = time.perf_counter()
        events.append(
            {"what": "compact", "at": begin - t0, "ms": (end - begin) * 1000,
             "cpu_ms": (time.thread_time() - cpu) * 1000,
             "jobs": before, "kept": len(self._heaps[name])}
        )  # fmt: skip

    scheduler_module.Scheduler._compact = timed_compact  # type: ignore[method-assign]

    async def lag_timer() -> None:
        period = 0.005
        last, last_cpu = time.perf_counter(), time.thread_time()
        samples = 0
        while True:
            await asyncio.sleep(period)
            now, cpu = time.perf_counter(), time.thread_time()
            lag = (now - last - period) * 1000
            samples += 1
            if lag > STALL_MS:  # with the loop thread's CPU in it (less: other processes ran)
                events.append(
                    {"what": "stall", "at": last - t0, "ms": lag,
                     "cpu_ms": (cpu - last_cpu) * 1000}
                )  # fmt: skip
            if samples % 2000 == 0:  # every ~10 s+: how many objects the GC tracks
                begin = time.perf_counter()
                n = len(gc.get_objects())
                events.append(
                    {"what": "count", "at": begin - t0, "n": n,
                     "ms": (time.perf_counter() - begin) * 1000, "cpu_ms": 0.0}
                )  # fmt: skip
            last, last_cpu = time.perf_counter(), time.thread_time()

    original_serve = cli.serve

    async def serve(settings: Any) -> None:
        timer = asyncio.create_task(lag_timer())
        try:
            await original_serve(settings)
        finally:
            timer.cancel()
            import collections

            kinds = collections.Counter(type(o).__name__ for o in gc.get_objects())
            events.append({"what": "types", "at": 0, "ms": 0, "top": kinds.most_common(12)})
            Path(out_path).write_text(json.dumps(events))  # noqa: ASYNC240 (at exit)

    cli.serve = serve  # type: ignore[assignment]


def probe_server() -> None:
    """``tail.py _serve OUT COUNT flags...``: prefilled.py's server with the probe."""
    out, count, *flags = sys.argv[2:]
    install_probe(out)
    sys.argv = [sys.argv[0], count, *flags]
    import prefilled

    prefilled.main()


def run_wrk(url: str, seconds: float, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(POST_LUA)
    command = pinned(1, ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                         "--latency", "-s", script.name, url])  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    os.unlink(script.name)

    def ms(pattern: str) -> float:
        found = re.search(pattern, out)
        if found is None:
            return float("nan")
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", found.group(1)).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {
        "rate": float(rate.group(1)) if rate else float("nan"),
        "p50": ms(r"\s50%\s+([\d.]+\w+)"),
        "p99": ms(r"\s99%\s+([\d.]+\w+)"),
        "max": ms(r"Latency\s+\S+\s+\S+\s+([\d.]+\w+)"),
    }


def env_for(checkout: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if checkout:
        env["PYTHONPATH"] = checkout + os.pathsep + str(HERE)
    else:
        env["PYTHONPATH"] = str(HERE)
    return env


def probe(args: argparse.Namespace) -> None:
    out = tempfile.mktemp(suffix=".json")
    port = free_port()
    command = [sys.executable, str(Path(__file__).resolve()), "_serve", out,
               str(args.count), "--port", str(port)]  # fmt: skip
    server = Server(command, "/_sim/health", port, env=env_for(args.checkout), timeout=180)
    try:
        load_from = time.perf_counter()
        figures = run_wrk(server.url + "/otp", args.seconds, 50)
    finally:
        server.stop()
    # Times from the start of the load; what happened before (the prefill, the start-up
    # collections) is left out.
    events = [
        {**e, "at": e["at"] - load_from}
        for e in json.loads(Path(out).read_text())
        if e["what"] == "types" or e["at"] >= load_from
    ]
    os.unlink(out)
    print(f"wrk -c50 {args.seconds:g}s at the cap ({args.count:,}): {figures['rate']:,.0f} "
          f"req/s, p50 {figures['p50']:.2f} ms, p99 {figures['p99']:.2f} ms, "
          f"max {figures['max']:.0f} ms")  # fmt: skip
    for gen in ("gc0", "gc1", "gc2"):
        times = [e["cpu_ms"] for e in events if e["what"] == gen]
        if times:
            print(f"{gen}: {len(times)} collections, CPU median {statistics.median(times):.2f}"
                  f" ms, max {max(times):.1f} ms, total {sum(times):.0f} ms")  # fmt: skip
    for e in events:
        if e["what"] == "gc2":
            print(f"full collection at {e['at']:.1f}s: {e['cpu_ms']:.1f} ms CPU "
                  f"({e['ms']:.1f} wall), {e['collected']} collected")  # fmt: skip
        if e["what"] == "compact":
            print(f"compaction at {e['at']:.1f}s: {e['jobs']:,} jobs -> {e['kept']:,} in "
                  f"{e['cpu_ms']:.1f} ms CPU ({e['ms']:.1f} wall)")  # fmt: skip
    for e in events:
        if e["what"] == "types":
            print("GC-tracked objects by type at the end: "
                  + ", ".join(f"{k} {n:,}" for k, n in e["top"]))  # fmt: skip
    tracked = [e["n"] for e in events if e["what"] == "count"]
    if tracked:
        print(f"GC-tracked objects: {tracked[0]:,} .. {max(tracked):,}")
    stalls = [e for e in events if e["what"] == "stall"]
    # A stall whose loop thread ran for less than half of it was mostly other processes
    # on the CPU (a shared machine), not the server.
    own = [s for s in stalls if s["cpu_ms"] >= s["ms"] / 2]
    print(f"loop stalls > {STALL_MS:g} ms: {len(stalls)}, of which the server's own "
          f"(loop thread on CPU >= half of it): {len(own)}")  # fmt: skip
    by_cause: dict[str, list[float]] = {}
    for s in own:
        inside = [
            e for e in events
            if e["what"] in ("gc0", "gc1", "gc2", "compact", "count")
            and e["at"] < s["at"] + s["ms"] / 1000 + 0.005 and e["at"] + e["ms"] / 1000 > s["at"]
            and e["ms"] > 5
        ]  # fmt: skip
        cause = max(inside, key=lambda e: e["ms"])["what"] if inside else "requests only"
        by_cause.setdefault(cause, []).append(s["ms"])
        if args.verbose or s["ms"] > 80:
            causes = ", ".join(f"{e['what']} {e['cpu_ms']:.0f} ms CPU" for e in inside)
            print(f"  at {s['at']:6.1f}s: {s['ms']:6.1f} ms ({s['cpu_ms']:.0f} CPU)  <- "
                  f"{causes or 'requests only'}")  # fmt: skip
    for cause, lags in sorted(by_cause.items()):
        print(f"own stalls with {cause}: {len(lags)}, max {max(lags):.0f} ms")


def latency(args: argparse.Namespace) -> None:
    variants = [("new", None)] + [
        (spec.split("=", 1)[0], spec.split("=", 1)[1].lstrip("@")) for spec in args.others
    ]
    results: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    for store in ("young", "cap"):
        servers: dict[str, Server] = {}
        try:
            for name, checkout in variants:
                port = free_port()
                if store == "young":
                    command = [sys.executable, "-m", "otpsim", "serve", "--port", str(port)]
                else:
                    command = [sys.executable, str(HERE / "prefilled.py"), str(args.count),
                               "--port", str(port)]  # fmt: skip
                servers[name] = Server(
                    command, "/_sim/health", port, env=env_for(checkout), timeout=180
                )
            for server in servers.values():  # warm up (and, young, fill a little)
                run_wrk(server.url + "/otp", 1, 50)
            for _ in range(args.rounds):
                for conns in (50, 10):
                    for name, server in servers.items():
                        figures = run_wrk(server.url + "/otp", args.seconds, conns)
                        results.setdefault((store, name, conns), []).append(figures)
        finally:
            for server in servers.values():
                server.stop()
    # Little's law: with C connections always busy, the mean latency is C / throughput;
    # p99 sits above it however short the tail (unless a few requests take most time).
    print("| store | server | conns | req/s | conns / rate ms | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|---|")
    for (store, name, conns), runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("rate", "p50", "p99")}
        worst = max(r["max"] for r in runs)
        print(f"| {store} | {name} | {conns} | {med['rate']:,.0f} | "
              f"{conns / med['rate'] * 1000:.1f} | {med['p50']:.2f} | "
              f"{med['p99']:.2f} | {worst:.0f} |")  # fmt: skip


def rss(args: argparse.Namespace) -> None:
    """RSS of a server at its cap under continuous load, sampled as the store churns
    ROUNDS times over (every record evicted and replaced each time)."""
    port = free_port()
    command = [sys.executable, str(HERE / "prefilled.py"), str(args.cap), "--port", str(port),
               "--max-messages", str(args.cap)]  # fmt: skip
    server = Server(command, "/_sim/health", port, env=env_for(None), timeout=180)
    try:
        done = 0
        print(f"cap {args.cap:,}: RSS {server.rss_mb():.0f} MB at start")
        while done < args.rounds * args.cap:
            figures = run_wrk(server.url + "/otp", args.seconds, 50)
            done += int(figures["rate"] * args.seconds)
            print(f"after ~{done / args.cap:.1f} x the cap of creates: RSS "
                  f"{server.rss_mb():.0f} MB ({figures['rate']:,.0f} req/s)")  # fmt: skip
    finally:
        server.stop()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        probe_server()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--seconds", type=float, default=75)
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--verbose", action="store_true")
    p.add_argument("checkout", nargs="?", help="@DIR: another checkout's code")
    lat = sub.add_parser("latency")
    lat.add_argument("--seconds", type=float, default=8)
    lat.add_argument("--rounds", type=int, default=2)
    lat.add_argument("--count", type=int, default=100_000)
    lat.add_argument("others", nargs="*", metavar="NAME=@DIR")
    r = sub.add_parser("rss")
    r.add_argument("--cap", type=int, default=20_000)
    r.add_argument("--rounds", type=int, default=6)
    r.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    if args.cmd == "rss":
        rss(args)
    elif args.cmd == "probe":
        if args.checkout:
            args.checkout = args.checkout.lstrip("@")
        probe(args)
    else:
        latency(args)


if __name__ == "__main__":
    main()
