"""Callback URLs aimed at the simulator itself (self-SSRF): refused at POST /otp when the
server can tell, and never delivered by the dispatcher whatever name reaches it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from support import FR, KEY, create, eventually, expect_error, otpsim_command, sim_of

from otpsim.config import Settings
from otpsim.server.keys import DISPATCHER

SETTINGS = Settings(callback_batch_window=0.0, callback_retry_schedule=(0.0, 5.0))


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/_sim/reset",
        "http://localhost:{port}/_sim/reset",
        "http://LOCALHOST.:{port}/_sim/clock",
        "http://app.localhost:{port}/_sim/reset",
        "http://127.0.0.2:{port}/_sim/reset",
        "http://0.0.0.0:{port}/_sim/reset",
        # Spellings the HTTP client (yarl, IDNA) turns into the simulator's address.
        "http://127\u30020\u30020\u30021:{port}/_sim/reset",  # ideographic full stops
        "http://\u24dbocalhost:{port}/_sim/reset",  # circled l
        "http://\uff2c\uff2f\uff23\uff21\uff2c\uff28\uff2f\uff33\uff34:{port}/",  # fullwidth
        "http://LocalHost.:{port}/_sim/reset",
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


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}\\@evil.test/x",  # a backslash in the authority
        "http://127.0.0.1%3A{port}/x",  # a host no resolver knows
        "http://%6c%6fcalhost:{port}/x",
        "http://exa mple.test:{port}/x",
        "http://a..b:{port}/x",
        "http://127.1:{port}/_sim/reset",  # legacy numeric forms the client refuses
        "http://2130706433:{port}/_sim/reset",
        "http://0x7f.1:{port}/_sim/reset",
        "http://127.0.0.1:0/x",
        "http://127.0.0.1:99999/x",
        "http://[::1/x",
    ],
)
async def test_a_callback_url_the_client_could_not_send_is_refused(
    make_client: Any, target: str
) -> None:
    client = await make_client(SETTINGS)
    url = target.format(port=closed_port())  # not the simulator's: refused for what it is
    before = len(sim_of(client).list_otps())
    resp = await client.post("/otp", json={"phoneNumber": FR, "otpCallbackUrl": url}, headers=KEY)
    err = await expect_error(resp, 400, "invalid_param", 2019)
    assert "otpCallbackUrl" in err["message"]
    assert len(sim_of(client).list_otps()) == before  # nothing was created


async def test_a_bad_host_header_does_not_skip_the_self_check(make_client: Any) -> None:
    client = await make_client(SETTINGS)
    url = f"http://127.0.0.1:{client.server.port}/_sim/reset"
    resp = await client.post(
        "/otp",
        json={"phoneNumber": FR, "otpCallbackUrl": url},
        headers={**KEY, "Host": "[bad:1"},  # not even a host: nothing to compare with
    )
    err = await expect_error(resp, 400, "invalid_param", 2019)
    assert "simulator itself" in err["message"]


async def test_internationalized_names_stay_allowed(make_client: Any) -> None:
    client = await make_client(SETTINGS)
    for url in ("https://b\u00fccher.example/hook", "https://xn--bcher-kva.example/hook",
                "http://under_score.example:8080/hook", "http://user:pw@[::1]:9/hook"):  # fmt: skip
        otp = await create(client, otpCallbackUrl=url)
        assert otp["otpCallbackUrl"] == url  # echoed as given


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


# -- the global cap on waiting deliveries: shed from the largest backlog ----------------


def closed_port() -> int:
    """A loopback port with nobody listening (a dead receiver: connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def cancelled_with_callbacks(client: Any, urls: list[str], account: str) -> list[str]:
    """One OTP per URL, created by ``account`` and cancelled in-process: one delivery each."""
    sim = sim_of(client)
    ids = []
    for url in urls:
        otp = await sim.create_otp({"phoneNumber": FR, "otpCallbackUrl": url}, account=account)
        sim.cancel(otp.otp_id)
        ids.append(otp.otp_id)
    return ids


def capped(max_pending: int) -> Settings:
    return Settings(
        callback_batch_window=0.0,
        callback_retry_schedule=(0.0, 300.0, 1800.0),
        callback_max_pending=max_pending,
        shutdown_grace=0.1,
    )


async def dead_backlog(client: Any, account: str, ports: list[int], each: int) -> None:
    """``each`` deliveries to every dead port (each URL its own delivery), all of them
    attempted once and waiting for their retry."""
    dispatcher = client.app[DISPATCHER]
    for port in ports:
        urls = [f"http://127.0.0.1:{port}/hook?n={i}" for i in range(each)]
        await cancelled_with_callbacks(client, urls, account)
    await eventually(lambda: all(d.attempts for d in dispatcher.deliveries(state="pending")))


def states_of(client: Any, account: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for delivery in client.app[DISPATCHER].deliveries(account=account):
        counts[delivery.state] = counts.get(delivery.state, 0) + 1
    return counts


@pytest.fixture
async def healthy(aiohttp_server: Any) -> Any:
    """A receiver that answers 200; yields (its hook URL, the bodies it received)."""
    got: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.read())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    return str(server.make_url("/hook")), got


async def test_dead_receivers_filling_the_global_cap_never_drop_another_account_s_callback(
    make_client: Any, healthy: Any
) -> None:
    client = await make_client(capped(30))
    await dead_backlog(client, "attacker", [closed_port() for _ in range(3)], 10)
    assert states_of(client, "attacker") == {"pending": 30}
    url, got = healthy
    dispatcher = client.app[DISPATCHER]
    [victim] = await cancelled_with_callbacks(client, [url], "victim")
    await eventually(lambda: dispatcher.deliveries(otp_id=victim)[0].state == "delivered")
    assert len(got) == 1
    # Room was made at the attacker's expense: one of its deliveries was shed.
    assert states_of(client, "attacker") == {"pending": 29, "dropped": 1}


async def test_the_global_cap_holds_and_sheds_from_the_largest_backlog(
    make_client: Any, healthy: Any
) -> None:
    client = await make_client(capped(30))
    big, small = [closed_port() for _ in range(2)], closed_port()
    await dead_backlog(client, "big", big, 10)  # 20 waiting, 10 per receiver
    await dead_backlog(client, "small", [small], 10)  # 10 waiting
    # "small" adds to its own dead receiver: "big" holds the most, so "big" gives way.
    await dead_backlog(client, "small", [small], 5)
    assert states_of(client, "big") == {"pending": 15, "dropped": 5}
    assert states_of(client, "small") == {"pending": 15}
    # Now level, each newcomer of "big" is shed from "big" (its own largest receiver)...
    await dead_backlog(client, "big", big[:1], 4)
    assert states_of(client, "big") == {"pending": 15, "dropped": 9}
    assert states_of(client, "small") == {"pending": 15}
    dispatcher = client.app[DISPATCHER]
    assert len(dispatcher.deliveries(state="pending")) == 30  # never beyond the cap
    # ... and a healthy receiver's callback still goes out at once.
    url, got = healthy
    [otp_id] = await cancelled_with_callbacks(client, [url], "big")
    await eventually(lambda: dispatcher.deliveries(otp_id=otp_id)[0].state == "delivered")
    assert len(got) == 1
