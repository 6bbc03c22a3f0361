"""Stopping ``otpsim serve`` with clients attached: it must not wait for them.

A container's stop grace is typically 10 s before SIGKILL; with a browser tab or
``otpsim tail`` connected, SIGTERM used to wait out the client's keep-alive (~60 s).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
from support import launch, otpsim_command, read_until, stop

# The promise is "within a second"; the bound is generous for a shared, noisy machine.
STOP_BOUND = 5.0


async def test_sigterm_stops_at_once_with_websockets_and_a_long_poll_attached(
    tmp_path: Path,
) -> None:
    proc, base = launch(tmp_path, "--host", "127.0.0.1")
    tail = _start_tail(base)
    try:
        async with aiohttp.ClientSession() as session:
            # A browser tab: the inbox page's websocket, with its Origin.
            page = await session.ws_connect(f"{base}/_sim/ws", headers={"Origin": base})
            hello = await page.receive_json(timeout=5)
            assert hello["type"] == "hello"
            # A test waiting for an SMS that will never come.
            poll = asyncio.ensure_future(
                session.get(
                    f"{base}/_sim/messages/latest",
                    params={"phoneNumber": "+33612345678", "wait": "60"},
                )
            )
            # Both clients are attached once each has seen an SMS go by.
            await asyncio.to_thread(read_until, tail, r"following", stream="stderr")
            sent = await session.post(
                f"{base}/otp", json={"phoneNumber": "+33699999999"}, headers={"X-API-KEY": "k"}
            )
            assert sent.status == 201, await sent.text()
            await asyncio.to_thread(read_until, tail, r"\+33699999999")
            # The POST's last event: its request journal entry, once it was answered.
            while (await page.receive_json(timeout=5))["type"] != "request.logged":
                pass
            await asyncio.sleep(0.2)  # the long poll is in

            # A live page is always reading: it answers the server's close frame.
            closing = asyncio.ensure_future(page.receive(timeout=10))
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 30)
            took = time.monotonic() - started

            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
            assert took < STOP_BOUND, f"stopping took {took:.1f}s with clients attached"
            # The page was told the server is going away (1001), not cut off.
            frame = await closing
            assert frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert page.close_code == 1001
            # The long poll got an answer in the provider's error shape.
            answer = await asyncio.wait_for(poll, 5)
            body = await answer.json()
            assert answer.status == 503, body
            assert body["error"]["type"] == "server_error"
            assert "shutting down" in body["error"]["message"]
    finally:
        stop(proc)
        stop(tail)


def _start_tail(base: str) -> subprocess.Popen[str]:
    """``otpsim tail``, the terminal client, following ``base``."""
    return subprocess.Popen(
        [*otpsim_command(), "tail", "--url", base],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_with_no_client_still_stops_cleanly(tmp_path: Path) -> None:
    proc, _ = launch(tmp_path, "--host", "127.0.0.1")
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_BOUND) == 0
        read_until(proc, r"otpsim: stopped")
    finally:
        stop(proc)
