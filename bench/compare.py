"""Interleaved A/B: servers started side by side, loaded in turn (A, B, A, B, ...).

On a shared, noisy machine a figure moves by 10-20 % from one minute to the next;
alternating short runs and comparing ratios cancels most of that drift.

    python bench/compare.py [--rounds 3] [--seconds 4] [--path /otp] SPEC SPEC...

SPEC is ``name=kind[:args]``, kinds:

* ``ceiling`` / ``parse`` / ``lean`` / ``lean-store``: the references of bench/run.py;
* ``otpsim:FLAGS``: ``otpsim serve FLAGS`` (flags split on spaces, e.g.
  ``otpsim:--log-level warning``);
* ``full:COUNT FLAGS``: ``otpsim serve`` with the store prefilled to COUNT
  (bench/prefilled.py);
* any kind may be prefixed ``@DIR,`` to run otpsim's code from another checkout (for
  before/after), e.g. ``old=@/tmp/otpsim-main,otpsim:``.

Each server is pinned to CPU 0 and wrk to CPU 1. Prints, per spec, the median req/s
over its rounds and its ratio to the first spec, the server's CPU time per request
(from /proc: far less sensitive to other load on the machine than req/s) and the ratio
of the first spec's to it, and p99.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import BODY, Server, free_port, wrk  # noqa: E402  (bench/ is not a package)


def start(kind: str) -> Server:
    env = dict(os.environ)
    if kind.startswith("@"):
        checkout, kind = kind[1:].split(",", 1)
        env["PYTHONPATH"] = checkout
        # Or ``python -m otpsim`` puts the current directory first on sys.path, and run
        # from a checkout that is that checkout's otpsim, not DIR's.
        env["PYTHONSAFEPATH"] = "1"
    name, _, args = kind.partition(":")
    port = free_port()
    py = sys.executable
    if name in ("ceiling", "parse"):
        command = [py, str(HERE / "ceiling.py"), str(port)] + (
            ["--parse"] if name == "parse" else []
        )
        return Server(command, "/", port, env=env)
    if name in ("lean", "lean-store"):
        command = [py, str(HERE / "lean.py"), str(port)] + (
            ["--store"] if name == "lean-store" else []
        )
        return Server(command, "/", port, env=env)
    if name == "otpsim":
        command = [py, "-m", "otpsim", "serve", "--port", str(port), *args.split()]
        return Server(command, "/_sim/health", port, env=env)
    if name == "full":
        count, *flags = args.split()
        command = [py, str(HERE / "prefilled.py"), count, "--port", str(port), *flags]
        return Server(command, "/_sim/health", port, env=env, timeout=120)
    raise SystemExit(f"compare: unknown kind {kind!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", metavar="NAME=KIND[:ARGS]")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--path", default="/otp")
    parser.add_argument("--warmup", type=float, default=1, help="seconds of load first")
    args = parser.parse_args()
    servers: dict[str, Server] = {}
    rates: dict[str, list[float]] = {}
    p99: dict[str, list[float]] = {}
    cost: dict[str, list[float]] = {}  # server CPU microseconds per request
    try:
        for spec in args.specs:
            name, _, kind = spec.partition("=")
            servers[name] = start(kind)
            rates[name], p99[name], cost[name] = [], [], []
        for server in servers.values():
            if args.warmup:
                wrk(server.url + args.path, "POST", BODY, args.warmup, args.connections)
        for _ in range(args.rounds):
            for name, server in servers.items():
                cpu = server.cpu_seconds()
                row = wrk(server.url + args.path, "POST", BODY, args.seconds, args.connections)
                requests = (row.rate or 0.0) * max(1, round(args.seconds))
                cost[name].append((server.cpu_seconds() - cpu) / max(requests, 1) * 1e6)
                rates[name].append(row.rate or 0.0)
                p99[name].append(row.p99_ms or 0.0)
                if row.note:
                    print(f"  {name}: {row.note}", file=sys.stderr)
    finally:
        for server in servers.values():
            server.stop()
    names = list(servers)
    first = statistics.median(rates[names[0]])
    first_cost = statistics.median(cost[names[0]])
    for name in names:
        median, us = statistics.median(rates[name]), statistics.median(cost[name])
        runs = " ".join(f"{r:,.0f}" for r in rates[name])
        print(
            f"{name:>14}: {median:8,.0f} req/s ({median / first:4.2f} x {names[0]})  "
            f"CPU {us:6.1f} us/req ({first_cost / us:4.2f} x)  "
            f"p99 {statistics.median(p99[name]):6.2f} ms   (runs: {runs})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
