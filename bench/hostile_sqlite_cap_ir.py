"""SQLite at its retention cap vs a young database, in instructions per request.

    python bench/hostile_sqlite_cap_ir.py [--cap 100000] [--requests 1998] NAME=CHECKOUT ...

CPU time per request moves by ~10 % between runs on a shared machine, as much as the
gap being measured; instructions do not. For each checkout: a young database (a new
file) and one filled to the cap (``bench/prefilled.py``'s rows, written beforehand by
that checkout's own code, outside valgrind), each served by ``otpsim serve --db`` with
defaults under callgrind (all threads: the checkpointer's work counts too), loaded with
POST /otp as ``bench/instructions.py`` does. Prints instructions per request, young and
at the cap, and their ratio (young / at the cap: the ">= 0.9 x" figure). Instructions
are not time: the WAL frames a commit writes are kernel work, counted by
``bench/store_cap.py``. Needs valgrind; ~2 minutes per checkout. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from instructions import free_port, load, request_bytes  # noqa: E402

PREFILL = """
import sys
sys.path.insert(0, sys.argv[3])
from prefilled import prefill
from otpsim.store.sqlite import SqliteStore
store = SqliteStore(sys.argv[1])
prefill(store, int(sys.argv[2]))
store.close()
"""


def environment(checkout: str) -> dict[str, str]:
    # PYTHONSAFEPATH: `python -m` would otherwise put the current directory first.
    return dict(os.environ, PYTHONPATH=str(Path(checkout).resolve()), PYTHONSAFEPATH="1")


def measure(checkout: str, db: Path, args: argparse.Namespace) -> float:
    port = free_port()
    out = db.parent / f"{db.stem}.callgrind"
    server = subprocess.Popen(
        [
            "valgrind", "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={out}", sys.executable, "-m", "otpsim", "serve",
            "--port", str(port), "--db", str(db),
        ],
        env=environment(checkout), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.5)
        raw = request_bytes("POST", "/otp", port)
        asyncio.run(load(port, raw, args.warmup, args.connections))
        for switch in ("on", "off"):
            subprocess.run(["callgrind_control", "-i", switch, str(server.pid)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            if switch == "on":
                asyncio.run(load(port, raw, args.requests, args.connections))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=300)
    totals = [int(x.split()[1]) for x in out.read_text().splitlines() if x.startswith("totals:")]
    if not totals or not totals[-1]:
        raise RuntimeError("no totals in the callgrind output")
    return totals[-1] / args.requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cap", type=int, default=100_000)
    # 1,998: two of the retention's deletes of 1,000 rows (1 % of the cap) fall in it
    parser.add_argument("--requests", type=int, default=1998)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--keep", metavar="DIR", help="write the files (and callgrind's) here")
    parser.add_argument("specs", nargs="+", metavar="NAME=CHECKOUT")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or scratch
        for spec in args.specs:
            name, _, checkout = spec.partition("=")
            checkout = checkout or "."
            young, full = Path(folder) / f"{name}-young.db", Path(folder) / f"{name}-full.db"
            subprocess.run(
                [sys.executable, "-c", PREFILL, str(full), str(args.cap), str(BENCH)],
                env=environment(checkout), check=True,
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
