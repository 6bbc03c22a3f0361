"""The store's own cost per insert (an OTP and its message), young and at its cap.

    python bench/store_cap.py [--cap 100000] [--inserts 20000]

In-process and in CPU time (``time.process_time``: what the process spent, whoever
else shares the machine), for the memory and the SQLite store. "young" inserts into an
empty store; "at cap" into one prefilled to the cap, so that each insert also evicts.
SQLite writes are grouped as the server groups them (a commit every 10 inserts here).
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
    otp_id = str(uuid.uuid4())
    otp = Otp.issue(REQUEST, otp_id=otp_id, pin="123456", now=0.0, account="a", cost=0.05, parts=1)
    message = Message(
        str(uuid.uuid4()), otp_id, "a", "+33612345678", "FR", "OTPSIM",
        "Your code is 123456", "123456", 1, "GSM-7", 0.0, seq=seq,
    )  # fmt: skip
    return otp, message


async def per_insert(store: MemoryStore | SqliteStore, first_seq: int, inserts: int) -> float:
    """Microseconds of CPU per inserted OTP + message."""
    items = [pair(first_seq + n) for n in range(inserts)]
    began = time.process_time()
    for n, (otp, message) in enumerate(items):
        store.save_otp(otp)
        store.save_message(message)
        if n % 10 == 9:
            await store.durable()
    await store.durable()
    return (time.process_time() - began) / inserts * 1e6


async def fill(store: MemoryStore | SqliteStore, count: int) -> None:
    for n in range(count):
        otp, message = pair(n - count)
        store.save_otp(otp)
        store.save_message(message)
        if n % 5000 == 4999:
            await store.durable()
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
                    else SqliteStore(path, retention=retention)
                )
                try:
                    if case == "at cap":
                        await fill(store, args.cap)
                    figures.append(await per_insert(store, 1, args.inserts))
                finally:
                    store.close()
            young, full = figures
            print(
                f"{kind:>6}: young {young:6.1f} us/insert, at cap {full:6.1f} us/insert "
                f"({young / full:.2f} x young's rate)"
            )


if __name__ == "__main__":
    asyncio.run(main())
