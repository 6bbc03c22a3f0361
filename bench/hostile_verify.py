"""Hostile verify: what 1,500 wrong PINs of 60 KB each cost the server (issue #12, item 3).

Starts ``otpsim serve`` on 127.0.0.1 (a free port), creates one OTP, sends N verifies of
a 60 KB wrong PIN over one keep-alive connection, then prints the server's RSS before
and after (and with ``--db`` the database and WAL sizes). Bounded: N requests at most,
and it stops sending after ``--time-limit`` seconds. Loopback only.

    python bench/hostile_verify.py            # memory store
    python bench/hostile_verify.py --db       # SQLite, in a temporary folder
    PYTHONPATH=/path/to/other/checkout python bench/hostile_verify.py   # "before"
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import tempfile
import time
from pathlib import Path

from hostile_common import rss_mib, serve

KEY = {"X-API-KEY": "bench", "Content-Type": "application/json"}


def size_mib(path: Path) -> float:
    return path.stat().st_size / 2**20 if path.exists() else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", action="store_true", help="use a SQLite file (--db)")
    parser.add_argument("--count", type=int, default=1500)
    parser.add_argument("--pin-bytes", type=int, default=60_000)
    parser.add_argument("--time-limit", type=float, default=120.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="otpsim-bench-") as temporary:
        folder = Path(temporary)
        db = folder / "otpsim.db"
        with serve(*(["--db", str(db)] if args.db else []), folder=folder) as server:
            measure(server.proc.pid, server.port, args, db)


def measure(pid: int, port: int, args: argparse.Namespace, db: Path) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(path: str, body: bytes) -> tuple[int, bytes]:
        conn.request("POST", path, body=body, headers=KEY)
        response = conn.getresponse()
        return response.status, response.read()

    status, raw = post("/otp", json.dumps({"phoneNumber": "+33612345678"}).encode())
    assert status == 201, raw
    otp_id = json.loads(raw)["otpId"]
    time.sleep(0.5)
    before = rss_mib(pid)
    body = json.dumps({"pin": "9" * args.pin_bytes}).encode()
    started = time.monotonic()
    sent = 0
    statuses: dict[int, int] = {}
    while sent < args.count and time.monotonic() - started < args.time_limit:
        status, _ = post(f"/otp/{otp_id}", body)
        statuses[status] = statuses.get(status, 0) + 1
        sent += 1
    elapsed = time.monotonic() - started
    after = rss_mib(pid)
    print(f"store: {'sqlite' if args.db else 'memory'}; code: {_code_version()}")
    print(f"verifies sent: {sent} of {args.count} ({args.pin_bytes:,}-byte PIN) in {elapsed:.1f} s")
    print(f"answers: {dict(sorted(statuses.items()))}")
    print(f"RSS: {before:.0f} MiB before, {after:.0f} MiB after ({after - before:+.0f} MiB)")
    if args.db:
        wal = Path(f"{db}-wal")
        print(f"db file: {size_mib(db):.1f} MiB; WAL: {size_mib(wal):.1f} MiB")


def _code_version() -> str:
    import otpsim

    return os.path.dirname(otpsim.__file__)


if __name__ == "__main__":
    main()
