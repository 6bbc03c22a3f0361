"""The live hub: versioned events in order, the Origin check, and slow clients dropped."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType
from support import KEY, create, expect_error, sim_of

from otpsim import __version__
from otpsim.config import Settings
from otpsim.engine.simulator import Simulator
from otpsim.server.edge import Streams
from otpsim.server.live import LiveHub, _Client


async def next_event(ws: Any) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive(), timeout=5)
    assert message.type == WSMsgType.TEXT, message
    return json.loads(message.data)  # type: ignore[no-any-return]


async def test_hello_then_every_event_in_order(client: Any) -> None:
    async with client.ws_connect("/_sim/ws") as ws:
        hello = await next_event(ws)
        assert hello["v"] == 1
        assert hello["type"] == "hello"
        assert hello["data"]["version"] == __version__
        otp = await create(client)
        kinds = [(await next_event(ws))["type"] for _ in range(4)]
        # The request's journal entry comes last: it is written once the answer is known.
        assert kinds == ["otp.created", "message.created", "message.delivered", "request.logged"]
        await client.delete(f"/otp/{otp['otpId']}", headers=KEY)
        updated = await next_event(ws)
        assert updated["type"] == "otp.updated"
        assert updated["data"]["status"] == "CANCELLED"
        assert (await next_event(ws))["type"] == "request.logged"
        await client.post("/_sim/clock", json={"advance": 60})
        clock = await next_event(ws)
        assert clock["type"] == "clock"
        assert set(clock["data"]) == {"now", "timestamp", "frozen", "offset"}
        await client.post("/_sim/reset")
        assert (await next_event(ws))["type"] == "reset"


async def test_two_clients_both_receive(client: Any) -> None:
    async with client.ws_connect("/_sim/ws") as a, client.ws_connect("/_sim/ws") as b:
        await next_event(a)
        await next_event(b)
        await create(client)
        assert (await next_event(a))["type"] == "otp.created"
        assert (await next_event(b))["type"] == "otp.created"


async def test_cross_origin_websocket_is_refused(client: Any) -> None:
    resp = await client.get(
        "/_sim/ws",
        headers={
            "Origin": "http://evil.example",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    await expect_error(resp, 403, "access_denied", 1022)


async def test_same_origin_websocket_is_accepted(client: Any) -> None:
    origin = str(client.make_url("/")).rstrip("/")
    async with client.ws_connect("/_sim/ws", origin=origin) as ws:
        assert (await next_event(ws))["type"] == "hello"


async def test_server_shutdown_closes_live_clients(make_client: Any) -> None:
    client = await make_client()
    ws = await client.ws_connect("/_sim/ws")
    await next_event(ws)
    await client.close()
    message = await asyncio.wait_for(ws.receive(), timeout=5)
    assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)


class FakeSocket:
    """Stands in for a websocket: records what it sends, or blocks forever (a dead peer)."""

    def __init__(self, *, stuck: bool) -> None:
        self.stuck = stuck
        self.sent: list[str] = []
        self.closed = False
        self.close_code: int | None = None

    async def send_str(self, text: str) -> None:
        if self.stuck:
            await asyncio.Event().wait()
        self.sent.append(text)

    async def close(self, *, code: int, message: bytes = b"") -> None:
        self.closed = True
        self.close_code = code


async def test_a_slow_client_is_dropped_and_never_blocks_the_others() -> None:
    sim = Simulator(Settings())
    bus = sim.bus
    hub = LiveHub(bus, sim.clock_json, streams=Streams(10), queue_size=5)
    hub.start()
    stuck, healthy = FakeSocket(stuck=True), FakeSocket(stuck=False)
    clients = [_Client(stuck, asyncio.Queue(5)), _Client(healthy, asyncio.Queue(5))]  # type: ignore[arg-type]
    senders = []
    for c in clients:
        hub._join(c)
        senders.append(asyncio.create_task(hub._send(c)))
    for n in range(50):
        bus.publish("tick", {"n": n})
        await asyncio.sleep(0)  # let the healthy sender drain
    await asyncio.sleep(0.01)
    assert hub.client_count == 1
    assert stuck.closed
    assert stuck.close_code == 1013  # try again later
    assert [json.loads(t)["data"]["n"] for t in healthy.sent] == list(range(50))
    for task in senders:
        task.cancel()


async def test_a_client_flooding_the_socket_is_cut_off(client: Any) -> None:
    async with client.ws_connect("/_sim/ws") as ws:
        await next_event(ws)
        await ws.send_str("x" * 10_000)  # beyond the 4 KiB a client may send
        message = await asyncio.wait_for(ws.receive(), timeout=5)
        assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    # The server keeps serving.
    assert (await client.get("/_sim/health")).status == 200
    assert sim_of(client) is not None
