"""SQLite at its retention cap vs a young database: paired rounds, POST /otp, defaults.

    python bench/hostile_sqlite_cap.py [--rounds 8] [--seconds 2] [--cap 100000]
                                       [--before DIR]

Starts ``otpsim serve --db`` on a new file ("young") and ``bench/prefilled.py CAP
--db`` on another (filled to the cap, so every request evicts), each pinned to CPU 0
(wrk on CPU 1), then loads them in turn, young then full, ROUNDS times. Each round
gives a ratio (young's CPU per request / full's, and full's req/s / young's) from two
runs seconds apart, so load from elsewhere on the machine mostly cancels; the median
of the rounds is printed, with the spread. With ``--before DIR`` the same for DIR's
otpsim (another checkout), interleaved. Loopback only; bounded by ROUNDS x SECONDS.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import start
from run import BODY, Server, wrk


def measure(server: Server, seconds: float) -> tuple[float, float]:
    """req/s and server CPU microseconds per request of one run."""
    cpu = server.cpu_seconds()
    row = wrk(server.url + "/otp", "POST", BODY, seconds, 50)
    rate = row.rate or 0.0
    return rate, (server.cpu_seconds() - cpu) / max(rate * max(1, round(seconds)), 1) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2)
    parser.add_argument("--cap", type=int, default=100_000)
    parser.add_argument("--before", metavar="DIR", help="another checkout, measured too")
    args = parser.parse_args()
    folder = tempfile.TemporaryDirectory()
    prefixes = {"now": ""} | ({"before": f"@{args.before},"} if args.before else {})
    pairs: dict[str, tuple[Server, Server]] = {}
    try:
        for name, prefix in prefixes.items():
            young = start(f"{prefix}otpsim:--db {folder.name}/{name}-young.db")
            full = start(f"{prefix}full:{args.cap} --db {folder.name}/{name}-full.db")
            pairs[name] = (young, full)
        for young, full in pairs.values():  # warm up both
            measure(young, 1)
            measure(full, 1)
        ratios: dict[str, list[tuple[float, float, float, float]]] = {n: [] for n in pairs}
        for _ in range(args.rounds):
            for name, (young, full) in pairs.items():
                young_rate, young_us = measure(young, args.seconds)
                full_rate, full_us = measure(full, args.seconds)
                ratios[name].append(
                    (young_us / full_us, full_rate / max(young_rate, 1), young_us, full_us)
                )
    finally:
        for young, full in pairs.values():
            young.stop()
            full.stop()
        folder.cleanup()
    for name, rows in ratios.items():
        by_cpu = sorted(r[0] for r in rows)
        by_rate = sorted(r[1] for r in rows)
        print(
            f"{name:>6}: at the cap / young, by CPU per request {statistics.median(by_cpu):.2f} x "
            f"(rounds {by_cpu[0]:.2f}-{by_cpu[-1]:.2f}), by req/s "
            f"{statistics.median(by_rate):.2f} x (rounds {by_rate[0]:.2f}-{by_rate[-1]:.2f}); "
            f"CPU per request young {statistics.median(r[2] for r in rows):.0f} us, "
            f"at the cap {statistics.median(r[3] for r in rows):.0f} us"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
