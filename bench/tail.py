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
    install_pause_probes(events)

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
            events.append({"what": "threads", "at": 0, "ms": 0, "cpu": thread_cpu()})
            events.append({"what": "handles", "at": 0, "ms": 0, "hist": _HANDLE_HISTOGRAM})
            Path(out_path).write_text(json.dumps(events))  # noqa: ASYNC240 (at exit)

    cli.serve = serve  # type: ignore[assignment]


# Handles run by the loop, by wall-clock duration: bucket upper bounds in ms -> count.
_BUCKETS = (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 1e9)
_HANDLE_HISTOGRAM: dict[str, int] = {str(b): 0 for b in _BUCKETS}
PAUSE_MS = 2.0  # a handle (one callback or task step) longer than this is recorded


def thread_cpu() -> dict[str, float]:
    """CPU seconds each thread of this process has used, by thread name."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[f"{comm} ({task.name})"] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def _callback_name(callback: Any) -> str:
    """A handle's callback, named: a task's step by its coroutine."""
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        coro = task.get_coro()
        return f"task {getattr(coro, '__qualname__', repr(coro))}"[:60]
    return str(getattr(callback, "__qualname__", repr(callback)))[:60]


def install_pause_probes(events: list[dict[str, Any]]) -> None:
    """Time what may pause the loop: every handle the loop runs (a histogram, and the
    ones above PAUSE_MS with the loop thread's CPU in them), the calls that insert into
    the retained maps (a dict rebuild shows as one slow call), the log writer's flushes
    (in its own thread: its CPU is taken from the server's one CPU)."""
    import asyncio.events as asyncio_events
    from bisect import bisect_left

    from otpsim import logs
    from otpsim.engine import simulator as simulator_module
    from otpsim.store import memory as memory_module
    from otpsim.store import retention as retention_module

    perf, cpu = time.perf_counter, time.thread_time
    bounds = [float(b) for b in _BUCKETS]
    keys = [str(b) for b in _BUCKETS]
    hist = _HANDLE_HISTOGRAM
    run = asyncio_events.Handle._run

    def timed_run(self: Any) -> None:
        begin, begin_cpu = perf(), cpu()
        run(self)
        ms = (perf() - begin) * 1000
        hist[keys[bisect_left(bounds, ms)]] += 1
        if ms > PAUSE_MS:
            events.append(
                {"what": "handle", "at": begin, "ms": ms, "cpu_ms": (cpu() - begin_cpu) * 1000,
                 "cb": _callback_name(self._callback)}
            )  # fmt: skip

    asyncio_events.Handle._run = timed_run  # type: ignore[method-assign]

    def timed(owner: Any, name: str, label: str, slow_ms: float = 1.0) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            begin, begin_cpu = perf(), cpu()
            try:
                return original(*args, **kwargs)
            finally:
                ms = (perf() - begin) * 1000
                if ms > slow_ms:
                    events.append(
                        {"what": label, "at": begin, "ms": ms,
                         "cpu_ms": (cpu() - begin_cpu) * 1000}
                    )  # fmt: skip

        setattr(owner, name, wrapper)

    # Each retained map's insert (the store's OTPs and messages), the by-phone index
    # (in save_message, outside the map's put), the simulator's expiring-jobs map.
    timed(retention_module.RetainedMap, "put", "map put")
    timed(memory_module.MemoryStore, "save_message", "save_message")
    timed(memory_module.MemoryStore, "save_request", "save_request")
    timed(simulator_module.Simulator, "_expect_expiry", "expect_expiry")
    flush = logs.LineSink.flush

    def timed_flush(self: Any) -> None:
        begin, begin_cpu = perf(), cpu()
        waiting = len(self._lines)
        flush(self)
        events.append(
            {"what": "logflush", "at": begin, "ms": (perf() - begin) * 1000,
             "cpu_ms": (cpu() - begin_cpu) * 1000, "lines": waiting}
        )  # fmt: skip

    logs.LineSink.flush = timed_flush  # type: ignore[method-assign]


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
        if e["what"] in ("types", "threads", "handles") or e["at"] >= load_from
    ]
    os.unlink(out)
    if args.dump:
        Path(args.dump).write_text(json.dumps(events))
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
    pause_table(events, args.seconds, args.verbose)


CAUSES = ("gc0", "gc1", "gc2", "compact", "map put", "save_message", "expect_expiry",
          "save_request", "count")  # fmt: skip


# A slow insert into one of these is a dict (or OrderedDict) rebuilding its table.
REBUILDS = dict.fromkeys(
    ("map put", "save_message", "expect_expiry", "save_request"), "dict rebuild (retained maps)"
)


def pause_table(events: list[dict[str, Any]], seconds: float, verbose: bool = False) -> None:
    """Every handle the loop ran for longer than PAUSE_MS, by what ran inside it (the
    longest probe event within it), with the loop thread's CPU: a handle whose CPU is
    under half its wall time was mostly waiting for the CPU (other processes, or the
    log writer thread)."""
    for e in events:
        if e["what"] == "threads":
            total = sum(e["cpu"].values()) or 1.0
            print("CPU by thread: " + ", ".join(
                f"{name} {sec:.2f} s ({sec / total:.1%})" for name, sec in e["cpu"].items()
            ))  # fmt: skip
        if e["what"] == "handles":
            hist, total = e["hist"], sum(e["hist"].values()) or 1
            print("handles by wall time (ms, upper bound: count): " + ", ".join(
                f"{k}: {n:,}" for k, n in hist.items() if n
            ) + f"; total {total:,}")  # fmt: skip
    flushes = [e for e in events if e["what"] == "logflush"]
    if flushes:
        cpu = sorted(e["cpu_ms"] for e in flushes)
        lines = sorted(e["lines"] for e in flushes)
        print(f"log writer: {len(flushes) / seconds:.1f} flushes/s, lines per flush median "
              f"{statistics.median(lines):.0f}, CPU per flush median "
              f"{statistics.median(cpu):.3f} ms, p99 {cpu[int(len(cpu) * 0.99)]:.3f} ms, "
              f"total {sum(cpu):.0f} ms")  # fmt: skip
    for what in ("gc0", "gc1"):
        cpu = sorted(e["cpu_ms"] for e in events if e["what"] == what)
        if cpu:
            print(f"{what}: {len(cpu) / seconds:.1f}/s, CPU median {statistics.median(cpu):.2f}"
                  f" ms, p90 {cpu[int(len(cpu) * 0.9)]:.2f}, max {cpu[-1]:.2f}")  # fmt: skip
    handles = [e for e in events if e["what"] == "handle"]
    inner = [e for e in events if e["what"] in CAUSES]
    rows: dict[str, list[dict[str, Any]]] = {}
    for h in handles:
        end = h["at"] + h["ms"] / 1000
        inside = [
            e for e in inner
            if e["at"] >= h["at"] - 0.0005 and e["at"] < end
            and e["cpu_ms"] >= max(0.5, h["cpu_ms"] / 3)  # (a call preempted is not a cause)
        ]  # fmt: skip
        if inside:
            # The innermost first: a collection inside a map's put is the collection's.
            top = max(inside, key=lambda e: e["cpu_ms"])
            collections = [e for e in inside if e["what"] in ("gc0", "gc1", "gc2", "compact")]
            if collections and max(e["cpu_ms"] for e in collections) >= top["cpu_ms"] / 2:
                top = max(collections, key=lambda e: e["cpu_ms"])
            cause = REBUILDS.get(top["what"], top["what"])
        elif h["cpu_ms"] < h["ms"] / 2:
            cause = "off the CPU (other threads or processes)"
        else:
            cause = "the handle's own work"
        rows.setdefault(cause, []).append(h)
        if verbose and h["cpu_ms"] >= 1.0:
            print(f"  pause at {h['at']:6.2f}s: {h['ms']:5.1f} ms ({h['cpu_ms']:.1f} CPU) "
                  f"{h['cb']} <- {cause}: " + ", ".join(
                      f"{e['what']} {e['cpu_ms']:.1f}" for e in inside))  # fmt: skip
    print(
        f"\n| pauses > {PAUSE_MS:g} ms (one loop handle) | how often | loop CPU per pause "
        "(median, max) | stall (median, max) |"
    )
    print("|---|---|---|---|")
    for cause, found in sorted(rows.items(), key=lambda kv: -len(kv[1])):
        cpu = [h["cpu_ms"] for h in found]
        wall = [h["ms"] for h in found]
        print(f"| {cause} | {len(found)} ({len(found) / seconds * 60:.0f}/min) | "
              f"{statistics.median(cpu):.1f}, {max(cpu):.1f} ms | "
              f"{statistics.median(wall):.1f}, {max(wall):.1f} ms |")  # fmt: skip


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
    p.add_argument("--dump", help="write the probe's events (JSON) to this file")
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
