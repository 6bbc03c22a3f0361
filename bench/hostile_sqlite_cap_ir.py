"""SQLite at its retention cap vs a young database, in instructions per request.

    python bench/hostile_sqlite_cap_ir.py [--cap 100000] [--requests 1998] NAME=CHECKOUT ...

CPU time per request moves by ~10 % between runs on a shared machine, as much as the
gap being measured; instructions do not. For each checkout: a young database (a new
file) and one filled to the cap (``bench/prefilled.py``'s rows, written beforehand by
that checkout's own code, outside valgrind), each served by ``otpsim serve --db`` with
defaults under callgrind (all threads: the checkpointer's work counts too), loaded with
POST /otp by ``bench/instructions.py``'s own measurement (wall-clock cadences spaced by
``--slowdown``). Prints instructions per request, young and
at the cap, and their ratio (young / at the cap: the ">= 0.9 x" figure). Instructions
are not time: the WAL frames a commit writes are kernel work, counted by
``bench/store_cap.py``. Needs valgrind; ~2 minutes per checkout. Loopback only.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from instructions import checkout_env, free_port, measure_command, serve_command  # noqa: E402

PREFILL = """
import sys
sys.path.insert(0, sys.argv[3])
from prefilled import prefill
from otpsim.store.sqlite import SqliteStore
store = SqliteStore(sys.argv[1])
prefill(store, int(sys.argv[2]))
store.close()
"""


def measure(checkout: str, db: Path, args: argparse.Namespace) -> float:
    port = free_port()
    command = serve_command(port, args.slowdown, flags=("--db", str(db)))
    out = db.parent / f"{db.stem}.callgrind"
    return measure_command(command, port, args, checkout_env(checkout), out=out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cap", type=int, default=100_000)
    # 1,998: two of the retention's deletes of 1,000 rows (1 % of the cap) fall in it
    parser.add_argument("--requests", type=int, default=1998)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--keep", metavar="DIR", help="write the files (and callgrind's) here")
    parser.add_argument("--slowdown", type=float, default=50.0, help="see instructions.py")
    parser.add_argument("specs", nargs="+", metavar="NAME=CHECKOUT")
    args = parser.parse_args()
    args.path, args.method = "/otp", "POST"  # (what instructions.measure_command loads)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or scratch
        for spec in args.specs:
            name, _, checkout = spec.partition("=")
            checkout = checkout or "."
            young, full = Path(folder) / f"{name}-young.db", Path(folder) / f"{name}-full.db"
            subprocess.run(
                [sys.executable, "-c", PREFILL, str(full), str(args.cap), str(BENCH)],
                env=checkout_env(checkout), check=True,
            )  # fmt: skip
            at_young = measure(checkout, young, args)
            at_cap = measure(checkout, full, args)
            print(
                f"{name:>8}: young {at_young / 1000:7.1f} k instructions/request, at the cap "
                f"{at_cap / 1000:7.1f} k: at the cap / young {at_young / at_cap:.3f} x",
                flush=True,
            )


if __name__ == "__main__":
    main()
