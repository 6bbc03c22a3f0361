"""Hostile callbacks and tokens: two figures, on loopback only, bounded in count and time.

1. A healthy receiver's callback latency (from the status change to its arrival) while
   another receiver is a black hole (accepts connections, never answers) with 200, then
   2,000 deliveries queued to it (one URL path each, so batching cannot merge them).
   Default settings (batch window 0.2 s, timeout 10 s); the wait is capped at 30 s.
2. The time to issue 20,000 OAuth tokens.

    .venv/bin/python bench/hostile_callbacks.py            # this checkout
    PYTHONPATH=/path/to/old/checkout python bench/hostile_callbacks.py   # "before"
"""

from __future__ import annotations

import asyncio
import time

from hostile_common import (
    arrival_seconds,
    healthy_receiver,
    latency_text,
    quiet_banner,
    running_app,
)

from otpsim.clock import Clock
from otpsim.config import Settings
from otpsim.engine.auth import Authenticator

CAP = 30.0  # seconds: longest wait for the healthy callback
PHONE = "+33612345678"


async def healthy_latency(queued: int) -> tuple[float | None, int]:
    """(seconds until the healthy callback arrived, or None past CAP; deliveries to the
    black hole that were dropped)."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    hole = await asyncio.start_server(swallow, "127.0.0.1", 0)
    hole_url = f"http://127.0.0.1:{hole.sockets[0].getsockname()[1]}/hook"

    try:
        async with healthy_receiver() as (healthy_url, arrived), running_app() as (sim, dispatcher):
            for n in range(queued):  # one URL each (same host and port): one delivery each
                otp = await sim.create_otp(
                    {"phoneNumber": PHONE, "otpCallbackUrl": f"{hole_url}/{n}"}, account="bench"
                )
                sim.cancel(otp.otp_id)
            await asyncio.sleep(0.5)  # the black hole's batches are flushed and in flight
            otp = await sim.create_otp(
                {"phoneNumber": PHONE, "otpCallbackUrl": healthy_url}, account="bench"
            )
            started = time.perf_counter()
            sim.cancel(otp.otp_id)
            latency = await arrival_seconds(arrived, started, CAP)
            dropped = len(dispatcher.deliveries(state="dropped"))
    finally:
        for writer in held:
            writer.close()
        hole.close()
    return latency, dropped


def token_seconds(count: int = 20_000) -> float:
    auth = Authenticator(Settings(), Clock())
    started = time.perf_counter()
    for _ in range(count):
        auth.issue_token("bench", None)
    return time.perf_counter() - started


async def main() -> None:
    quiet_banner()
    for queued in (200, 2000):
        latency, dropped = await healthy_latency(queued)
        shown = latency_text(latency, CAP)
        print(
            f"healthy receiver's callback latency, {queued} deliveries queued to a black hole: "
            f"{shown} ({dropped} of the black hole's dropped)"
        )
    print(f"issuing 20,000 OAuth tokens: {token_seconds():.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
