"""The store's own cost per insert (an OTP and its message), young and at its cap.

    python bench/store_cap.py [--cap 100000] [--inserts 20000]

In-process and in CPU time (``time.process_time``: what the process spent, whoever
else shares the machine), for the memory and the SQLite store. "young" inserts into an
empty store; "at cap" into one prefilled to the cap, so that each insert also evicts.
SQLite writes are grouped as the server groups them (a commit every 10 inserts here).
For SQLite it also counts pages, which no other load on the machine moves: the WAL
frames written per insert (each page a commit dirties, later copied again by a
checkpoint) and the pages read back from the file (page-cache misses). OTP and message
ids are random (uuid4), as the engine draws them.
Run it with ``PYTHONPATH=<another checkout>`` for a before/after.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from otpsim.domain.message import Message
from otpsim.domain.otp import Otp, OtpRequest
from otpsim.store.memory import MemoryStore
from otpsim.store.retention import Retention
from otpsim.store.sqlite import SqliteStore

REQUEST = OtpRequest(
    "+33612345678", "FR", "OTPSIM", "Your code is {{pin}}", None, 300, 3, "numbers", 6, None, None
)


def pair(seq: int) -> tuple[Otp, Message]:
    otp_id = str(uuid.uuid4())  # random, as the engine's
    otp = Otp.issue(REQUEST, otp_id=otp_id, pin="123456", now=0.0, account="a", cost=0.05, parts=1)
    message = Message(
        str(uuid.uuid4()), otp_id, "a", "+33612345678", "FR", "OTPSIM",
        "Your code is 123456", "123456", 1, "GSM-7", 0.0, seq=seq,
    )  # fmt: skip
    return otp, message


def bytes_read() -> int:
    try:
        with open("/proc/self/io", encoding="ascii") as io:
            return next(int(line.split()[1]) for line in io if line.startswith("rchar:"))
    except OSError:  # not Linux
        return 0


async def per_insert(
    store: MemoryStore | SqliteStore, first_seq: int, inserts: int
) -> tuple[float, float, float]:
    """Microseconds of CPU, WAL frames written and pages read, per inserted OTP +
    message (the page figures are 0 for the memory store)."""
    items = [pair(first_seq + n) for n in range(inserts)]
    sqlite = isinstance(store, SqliteStore)
    if sqlite:
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # an empty WAL to count in
    read = bytes_read()
    began = time.process_time()
    for n, (otp, message) in enumerate(items):
        store.save_otp(otp)
        store.save_message(message)
        if n % 10 == 9:
            await store.durable()
    await store.durable()
    # (the checkpoint the server's background thread would run: its CPU counts too)
    frames = store._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1] if sqlite else 0
    cpu = (time.process_time() - began) / inserts * 1e6
    read = bytes_read() - read
    return cpu, frames / inserts, read / 4096 / inserts


async def fill(store: MemoryStore | SqliteStore, count: int) -> None:
    for n in range(count):
        otp, message = pair(n - count)
        store.save_otp(otp)
        store.save_message(message)
        if n % 5000 == 4999:
            await store.durable()
            if isinstance(store, SqliteStore):
                store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    await store.durable()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=int, default=100_000)
    parser.add_argument("--inserts", type=int, default=20_000)
    args = parser.parse_args()
    retention = Retention(max_messages=args.cap)
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("memory", "sqlite"):
            figures = []
            for case in ("young", "at cap"):
                path = Path(folder) / f"{kind}-{case}.db"
                store = (
                    MemoryStore(retention)
                    if kind == "memory"
                    # (checkpoints only where the figures are taken: frames are counted)
                    else SqliteStore(path, retention=retention, checkpoint_every=3600)
                )
                try:
                    if case == "at cap":
                        await fill(store, args.cap)
                    figures.append(await per_insert(store, 1, args.inserts))
                finally:
                    store.close()
            (young, young_frames, young_read), (full, full_frames, full_read) = figures
            print(
                f"{kind:>6}: young {young:6.1f} us/insert, at cap {full:6.1f} us/insert "
                f"({young / full:.2f} x young's rate)"
            )
            if kind == "sqlite":
                print(
                    f"{'':>6}  WAL frames per insert: young {young_frames:.2f}, at cap "
                    f"{full_frames:.2f}; pages read per insert: young {young_read:.2f}, "
                    f"at cap {full_read:.2f}"
                )


if __name__ == "__main__":
    asyncio.run(main())
