"""Callback URLs aimed at the simulator itself (self-SSRF): refused at POST /otp when the
server can tell, and never delivered by the dispatcher whatever name reaches it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from support import FR, KEY, create, expect_error, otpsim_command, sim_of

from otpsim.config import Settings
from otpsim.server.keys import DISPATCHER

SETTINGS = Settings(callback_batch_window=0.0, callback_retry_schedule=(0.0, 5.0))


async def eventually(check: Callable[[], Any], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/_sim/reset",
        "http://localhost:{port}/_sim/reset",
        "http://LOCALHOST.:{port}/_sim/clock",
        "http://app.localhost:{port}/_sim/reset",
        "http://127.0.0.2:{port}/_sim/reset",
        "http://127.1:{port}/_sim/reset",
        "http://2130706433:{port}/_sim/reset",
        "http://0.0.0.0:{port}/_sim/reset",
        "http://[::1]:{port}/_sim/reset",
        "http://[::ffff:127.0.0.1]:{port}/_sim/reset",
        "http://127.0.0.1:{port}/",
        "http://127.0.0.1:{port}/otp",
        "http://sim.test:{port}/_sim/reset",  # the very name the client used to reach it
    ],
)
async def test_a_callback_url_aimed_at_the_simulator_is_refused(
    make_client: Any, target: str
) -> None:
    client = await make_client(SETTINGS)
    port = client.server.port
    url = target.format(port=port)
    before = len(sim_of(client).list_otps())
    headers = {**KEY, "Host": f"sim.test:{port}"}
    resp = await client.post(
        "/otp", json={"phoneNumber": FR, "otpCallbackUrl": url}, headers=headers
    )
    err = await expect_error(resp, 400, "invalid_param", 2019)
    assert "simulator itself" in err["message"]
    assert len(sim_of(client).list_otps()) == before  # nothing was created


async def test_loopback_urls_of_other_ports_stay_allowed(make_client: Any) -> None:
    client = await make_client(SETTINGS)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        port = other.getsockname()[1]
    for host in ("127.0.0.1", "localhost", "[::1]"):
        await create(client, otpCallbackUrl=f"http://{host}:{port}/_sim/reset")


async def test_the_dispatcher_never_delivers_to_its_own_simulator(make_client: Any) -> None:
    # Past the API's check (an OTP created in-process, a name the API cannot resolve):
    # the simulator refuses its own callback before any handler runs.
    client = await make_client(SETTINGS)
    sim = sim_of(client)
    keep = await create(client)
    url = f"http://127.0.0.1:{client.server.port}/_sim/reset"
    otp = await sim.create_otp({"phoneNumber": FR, "otpCallbackUrl": url}, account="test-key")
    sim.cancel(otp.otp_id)
    dispatcher = client.app[DISPATCHER]
    await eventually(lambda: dispatcher.deliveries()[0].state == "failed")
    [delivery] = dispatcher.deliveries()
    assert len(delivery.attempts) == 1  # not retried
    assert "simulator itself" in (delivery.attempts[0].error or "")
    assert sim.get_otp(keep["otpId"]) is not None  # no reset happened
    sim.move_clock(advance=3600)
    await asyncio.sleep(0.1)
    assert len(delivery.attempts) == 1


async def test_a_redirect_to_the_simulator_is_not_followed(
    make_client: Any, aiohttp_server: Any
) -> None:
    client = await make_client(SETTINGS)
    reset_url = f"http://127.0.0.1:{client.server.port}/_sim/reset"

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(reset_url)

    app = web.Application()
    app.router.add_post("/hook", redirect)
    receiver = await aiohttp_server(app)
    keep = await create(client)
    otp = await create(client, otpCallbackUrl=str(receiver.make_url("/hook")))
    await client.delete(f"/otp/{otp['otpId']}", headers=KEY)
    dispatcher = client.app[DISPATCHER]
    await eventually(lambda: bool(dispatcher.deliveries(otp_id=otp["otpId"])[0].attempts))
    attempt = dispatcher.deliveries(otp_id=otp["otpId"])[0].attempts[0]
    assert attempt.status_code == 307  # recorded as a failure, not followed
    assert sim_of(client).get_otp(keep["otpId"]) is not None


def test_a_default_callback_url_aimed_at_the_simulator_stops_the_start(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    hook = f"http://localhost:{port}/_sim/reset"
    proc = subprocess.run(
        [*otpsim_command(), "serve", "--port", str(port), "--callback-url", hook],
        capture_output=True, text=True, timeout=20, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert "--callback-url" in line
    assert "simulator itself" in line
