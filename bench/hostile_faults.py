"""Hung requests (a scenario's ``fault: hang``) against a real ``otpsim serve``: one
figure set, on loopback only, bounded in count and time.

N clients each send ``POST /otp`` that the scenario holds without an answer (N above
``--max-streams``, so the oldest give way); meanwhile one other client makes ordinary
calls. Printed: how many hung requests were still held, how many were closed to make
room, the other client's worst latency, and how long SIGTERM took to stop the server
with the hung requests attached.

    .venv/bin/python bench/hostile_faults.py
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support import launch, put_scenario, stop

HUNG, STREAMS, OTHERS = 300, 200, 50
KEY = {"X-API-KEY": "bench"}
BODY = {"phoneNumber": "+33612345678"}


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        proc, base = launch(Path(folder), "--host", "127.0.0.1", "--max-streams", str(STREAMS),
                            "--log-level", "warning")  # fmt: skip
        try:
            rule = {"match": "+33612345678", "fault": "hang"}
            scenario = json.dumps({"network": {"rules": [rule]}})
            status, _ = await asyncio.to_thread(put_scenario, base, scenario, 10)
            assert status == 200
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                hung = [
                    asyncio.ensure_future(session.post(f"{base}/otp", json=BODY, headers=KEY))
                    for _ in range(HUNG)
                ]
                await asyncio.sleep(2.0)
                worst = 0.0
                for _ in range(OTHERS):
                    started = time.monotonic()
                    resp = await session.post(
                        f"{base}/otp", json={"phoneNumber": "+33698765432"}, headers=KEY
                    )
                    assert resp.status == 201, await resp.text()
                    worst = max(worst, time.monotonic() - started)
                closed = sum(1 for t in hung if t.done())
                started = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                await asyncio.to_thread(proc.wait, 30)
                took = time.monotonic() - started
                await asyncio.gather(*hung, return_exceptions=True)
            print(f"hung requests sent: {HUNG} (--max-streams {STREAMS})")
            print(f"held: {HUNG - closed}, closed to make room: {closed}")
            print(f"another client's {OTHERS} POST /otp meanwhile: worst {worst * 1000:.1f} ms")
            print(f"SIGTERM to exit with {HUNG - closed} hung requests attached: {took:.2f} s "
                  f"(exit {proc.returncode})")  # fmt: skip
        finally:
            stop(proc)


if __name__ == "__main__":
    asyncio.run(main())
