"""Connection-level faults on a real ``otpsim serve`` (its HTTP edge), as hostile as a
test suite that asks for many of them: a hung request holds one connection and one
``--max-streams`` slot, never the server; stopping does not wait for it; and every other
client is answered meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support import FR, KEY, launch, put_scenario, raw_http, stop

STOP_BOUND = 5.0  # the promise is "within a second"; generous for a shared machine


def _scenario(**rule: Any) -> str:
    return json.dumps({"name": "faults", "network": {"rules": [{"match": "*", **rule}]}})


def _hostport(base: str) -> tuple[str, int]:
    match = re.match(r"http://([\d.]+):(\d+)", base)
    assert match is not None
    return match[1], int(match[2])


REQUEST = (
    b"POST /otp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: k\r\n"
    b"Content-Type: application/json\r\nContent-Length: 31\r\n\r\n"
    b'{"phoneNumber": "+33612345678"}'
)


async def test_sigterm_stops_at_once_with_hung_requests_attached(tmp_path: Path) -> None:
    proc, base = launch(tmp_path, "--host", "127.0.0.1")
    try:
        status, body = await asyncio.to_thread(put_scenario, base, _scenario(fault="hang"), 10)
        assert status == 200, body
        async with aiohttp.ClientSession() as session:
            hung = [
                asyncio.ensure_future(session.post(f"{base}/otp", json={"phoneNumber": FR},
                                                   headers=KEY))
                for _ in range(3)
            ]  # fmt: skip
            await asyncio.sleep(0.5)  # they are in, held
            assert not any(task.done() for task in hung)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 30)
            took = time.monotonic() - started
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
            assert took < STOP_BOUND, f"stopping took {took:.1f}s with hung requests"
            for task in hung:  # each was closed without an answer
                with pytest.raises(aiohttp.ClientError):
                    await asyncio.wait_for(task, 5)
    finally:
        stop(proc)


async def test_hung_requests_hold_max_streams_slots_and_the_oldest_gives_way(
    tmp_path: Path,
) -> None:
    proc, base = launch(tmp_path, "--host", "127.0.0.1", "--max-streams", "2")
    try:
        status, body = await asyncio.to_thread(
            put_scenario, base, _scenario(on=["status"], fault="hang"), 10
        )
        assert status == 200, body
        async with aiohttp.ClientSession() as session:
            created = await session.post(f"{base}/otp", json={"phoneNumber": FR}, headers=KEY)
            assert created.status == 201
            otp_id = (await created.json())["otpId"]

            def hang() -> asyncio.Future[aiohttp.ClientResponse]:
                return asyncio.ensure_future(session.get(f"{base}/otp/{otp_id}", headers=KEY))

            first = hang()
            await asyncio.sleep(0.3)
            second = hang()
            await asyncio.sleep(0.3)
            assert not first.done()
            assert not second.done()
            third = hang()  # at the cap: the oldest is closed to make room
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await asyncio.wait_for(first, 5)
            await asyncio.sleep(0.3)
            assert not second.done()
            assert not third.done()
            # Everyone else is answered meanwhile: other endpoints, other requests.
            for _ in range(5):
                resp = await session.post(f"{base}/otp", json={"phoneNumber": FR}, headers=KEY)
                assert resp.status == 201
            health = await session.get(f"{base}/_sim/health")
            assert health.status == 200
            for task in (second, third):
                task.cancel()
    finally:
        stop(proc)


async def test_each_fault_on_the_wire_and_the_server_stays_well(tmp_path: Path) -> None:
    proc, base = launch(tmp_path, "--host", "127.0.0.1")
    host, port = _hostport(base)
    try:
        # garbage: bytes that are not HTTP, then the connection closes
        status, body = await asyncio.to_thread(put_scenario, base, _scenario(fault="garbage"), 10)
        assert status == 200, body
        code, raw = await asyncio.to_thread(raw_http, host, port, REQUEST)
        assert code == 0
        assert raw, raw
        assert not raw.startswith(b"HTTP/"), raw[:80]

        # truncated: a 201 whose Content-Length promises more than comes
        status, body = await asyncio.to_thread(put_scenario, base, _scenario(fault="truncated"), 10)
        assert status == 200, body
        code, raw = await asyncio.to_thread(raw_http, host, port, REQUEST)
        head, _, rest = raw.partition(b"\r\n\r\n")
        promised = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        assert code == 201
        assert promised is not None
        assert 0 < len(rest) < int(promised[1])

        # reset: no answer at all, the connection reset (or closed) at once
        status, body = await asyncio.to_thread(put_scenario, base, _scenario(fault="reset"), 10)
        assert status == 200, body

        def reset() -> bytes:
            with socket.create_connection((host, port), timeout=5) as sock:
                sock.sendall(REQUEST)
                try:
                    return sock.recv(65536)
                except ConnectionResetError:
                    return b""

        assert await asyncio.to_thread(reset) == b""

        # Nothing was created by any of them, and the server answers as usual.
        async with aiohttp.ClientSession() as session:
            otps = await (await session.get(f"{base}/_sim/otps")).json()
            assert otps["otps"] == []
            await session.delete(f"{base}/_sim/scenario")
            resp = await session.post(f"{base}/otp", json={"phoneNumber": FR}, headers=KEY)
            assert resp.status == 201
    finally:
        stop(proc)


async def test_latency_holds_max_streams_slots_the_oldest_answers_and_stop_ends_them(
    tmp_path: Path,
) -> None:
    # A latency is a wait like a hang: it holds one --max-streams slot, never more than
    # the cap of them; at the cap the oldest goes on answering now; stopping ends them.
    proc, base = launch(tmp_path, "--host", "127.0.0.1", "--max-streams", "2")
    try:
        scenario = _scenario(on=["create", "status", "verify", "cancel"], latency=30)
        status, body = await asyncio.to_thread(put_scenario, base, scenario, 10)
        assert status == 200, body
        async with aiohttp.ClientSession() as session:

            def slow() -> asyncio.Future[aiohttp.ClientResponse]:
                return asyncio.ensure_future(
                    session.get(f"{base}/otp/00000000-0000-4000-8000-000000000000", headers=KEY)
                )

            first = slow()
            await asyncio.sleep(0.3)
            second = slow()
            await asyncio.sleep(0.3)
            assert not first.done()
            created = asyncio.ensure_future(
                session.post(f"{base}/otp", json={"phoneNumber": FR}, headers=KEY)
            )  # at the cap: the oldest wait ends, and it is answered as usual, now
            answered = await asyncio.wait_for(first, 10)
            assert answered.status == 404  # the unknown OTP's usual answer, not a 503
            await asyncio.sleep(0.3)
            assert not second.done()
            assert not created.done()
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 30)
            took = time.monotonic() - started
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
            assert took < STOP_BOUND, f"stopping took {took:.1f}s with delayed requests"
            for task in (second, created):  # answered now, or closed: not held 30 s
                with contextlib.suppress(aiohttp.ClientError):
                    await asyncio.wait_for(task, 5)
    finally:
        stop(proc)


async def test_delayed_requests_cannot_take_every_connection(tmp_path: Path) -> None:
    # --max-connections 20, and 25 requests each delayed 30 s: streams (delayed, hung,
    # long polls, websockets) take at most half the connections, so a victim is served.
    proc, base = launch(tmp_path, "--host", "127.0.0.1", "--max-connections", "20")
    try:
        scenario = _scenario(on=["status"], latency=30)
        status, body = await asyncio.to_thread(put_scenario, base, scenario, 10)
        assert status == 200, body
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as evil:
            url = f"{base}/otp/00000000-0000-4000-8000-000000000000"
            held = [
                asyncio.ensure_future(evil.get(url, headers={"X-API-KEY": "evil"}))
                for _ in range(25)
            ]
            await asyncio.sleep(1.5)  # they are in
            async with aiohttp.ClientSession() as victim:
                for _ in range(3):
                    resp = await victim.post(
                        f"{base}/otp", json={"phoneNumber": FR}, headers={"X-API-KEY": "v"}
                    )
                    assert resp.status == 201, await resp.text()
            answered = [task for task in held if task.done()]
            assert len(answered) >= 15  # pre-empted: answered at once, as usual
            for task in held:
                task.cancel()
    finally:
        stop(proc)
