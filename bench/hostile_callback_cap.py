"""The global callback cap under a flood to dead receivers: one figure set, on loopback
only, bounded in count and time.

Account "attacker" makes 10,000 deliveries (the default --callback-max-pending) to 10
dead receivers (closed ports on 127.0.0.1; one URL each, so batching cannot merge them),
waits until each was attempted once (refused: now waiting for its retry), then 1,000
more past the cap. Account "victim" then has one callback to a healthy receiver.
Printed: the victim's delivery state and latency (capped at 30 s), how many deliveries
wait, how many of the attacker's were dropped, and the cost of the 1,000 past the cap.

    .venv/bin/python bench/hostile_callback_cap.py            # this checkout
    PYTHONPATH=/path/to/old/checkout python bench/hostile_callback_cap.py   # "before"
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from hostile_common import (
    arrival_seconds,
    healthy_receiver,
    latency_text,
    quiet_banner,
    running_app,
)

CAP = 30.0  # seconds: longest wait for any phase
PHONE = "+33612345678"
DEAD, EACH, PAST = 10, 1_000, 1_000


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def main() -> None:
    quiet_banner()
    async with healthy_receiver() as (healthy_url, arrived), running_app() as (sim, dispatcher):
        await measure(sim, dispatcher, healthy_url, arrived)


async def measure(sim: Any, dispatcher: Any, healthy_url: str, arrived: asyncio.Event) -> None:
    async def flood(urls: list[str], account: str) -> list[str]:
        ids = []
        for url in urls:
            otp = await sim.create_otp(
                {"phoneNumber": PHONE, "otpCallbackUrl": url}, account=account
            )
            sim.cancel(otp.otp_id)
            ids.append(otp.otp_id)
        return ids

    ports = [closed_port() for _ in range(DEAD)]
    urls = [f"http://127.0.0.1:{p}/hook?n={i}" for p in ports for i in range(EACH)]
    await flood(urls, "attacker")
    deadline = time.monotonic() + CAP
    while time.monotonic() < deadline and any(  # noqa: ASYNC110 (polls the dispatcher)
        not d.attempts for d in dispatcher.deliveries(state="pending")
    ):
        await asyncio.sleep(0.1)
    started = time.perf_counter()
    await flood([f"http://127.0.0.1:{ports[0]}/hook?m={i}" for i in range(PAST)], "attacker")
    past = time.perf_counter() - started
    started = time.perf_counter()
    [victim] = await flood([healthy_url], "victim")
    latency = latency_text(await arrival_seconds(arrived, started, CAP), CAP)
    state = dispatcher.deliveries(otp_id=victim)[0].state
    waiting = len(dispatcher.deliveries(state="pending"))
    dropped = len(dispatcher.deliveries(account="attacker", state="dropped"))
    print(
        f"{DEAD * EACH} deliveries to {DEAD} dead receivers, then {PAST} more: "
        f"{past * 1000 / PAST:.2f} ms each past the cap; {waiting} waiting, "
        f"{dropped} of the attacker's dropped"
    )
    print(f"victim's callback to a healthy receiver: {state}, {latency}")


if __name__ == "__main__":
    asyncio.run(main())
