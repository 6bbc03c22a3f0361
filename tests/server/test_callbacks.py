"""Status callbacks against a real receiver on 127.0.0.1: shape, batching, retries,
timeouts, signatures, expiry on the clock, and an API that never waits for them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from support import KEY, create, eventually, pin_of, sim_of

from otpsim.clock import Clock
from otpsim.config import Settings
from otpsim.server.callbacks import retry_after_seconds, sign, signing_key
from otpsim.server.keys import DISPATCHER

SCHEDULE = (0.0, 5.0, 300.0, 1800.0)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver that records every request and answers from a script."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    # Each answer: a status code, or (status, headers), or ("sleep", seconds, status).
    script: list[Any] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(Received(dict(request.headers), await request.read()))
        answer = self.script.pop(0) if self.script else 200
        if isinstance(answer, tuple) and answer[0] == "sleep":
            await asyncio.sleep(answer[1])
            answer = answer[2]
        if answer == "hang":
            await self.release.wait()
            answer = 200
        if isinstance(answer, tuple):
            return web.Response(status=answer[0], headers=answer[1])
        return web.Response(status=answer)

    def items(self) -> list[dict[str, Any]]:
        return [item for r in self.requests for item in r.json["data"]]


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    server = await aiohttp_server(app)
    rec.url = str(server.make_url("/hook"))
    return rec


def settings(**overrides: Any) -> Settings:
    base = {"callback_batch_window": 0.0, "callback_retry_schedule": SCHEDULE}
    return Settings(**{**base, **overrides})


def deliveries(client: Any, otp_id: str | None = None) -> list[Any]:
    return client.app[DISPATCHER].deliveries(otp_id=otp_id)  # type: ignore[no-any-return]


async def test_a_callback_on_each_of_the_four_transitions(
    make_client: Any, receiver: Receiver, clock: Clock
) -> None:
    client = await make_client(settings())
    hook = {"otpCallbackUrl": receiver.url}
    verified = await create(client, **hook)
    await client.post(
        f"/otp/{verified['otpId']}",
        json={"pin": await pin_of(client, verified["otpId"])},
        headers=KEY,
    )
    cancelled = await create(client, **hook)
    await client.delete(f"/otp/{cancelled['otpId']}", headers=KEY)
    failed = await create(client, maxAttempts=1, pinType="letters", **hook)
    await client.post(f"/otp/{failed['otpId']}", json={"pin": "0"}, headers=KEY)
    expired = await create(client, ttl=60, **hook)
    await eventually(lambda: len(receiver.requests) == 3)
    clock.advance(60)  # no API call: the scheduler expires it on time
    await eventually(lambda: len(receiver.requests) == 4)

    statuses = {item["otpId"]: item["status"] for item in receiver.items()}
    assert statuses == {
        verified["otpId"]: "VERIFIED",
        cancelled["otpId"]: "CANCELLED",
        failed["otpId"]: "FAILED",
        expired["otpId"]: "EXPIRED",
    }
    first = receiver.requests[0]
    assert set(first.json) == {"event", "data"}
    assert first.json["event"] == "otp_update"
    item = first.json["data"][0]
    resp = await client.get(f"/otp/{verified['otpId']}", headers=KEY)
    assert item == await resp.json()  # the OTP object exactly as GET returns it
    assert "pin" not in item
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["webhook-id"].startswith("msg_")
    assert "webhook-signature" not in first.headers  # no secret configured


async def test_no_callback_on_creation_nor_without_a_url(
    make_client: Any, receiver: Receiver
) -> None:
    client = await make_client(settings())
    await create(client, otpCallbackUrl=receiver.url)
    no_url = await create(client)
    await client.delete(f"/otp/{no_url['otpId']}", headers=KEY)
    await asyncio.sleep(0.1)
    assert receiver.requests == []
    assert deliveries(client) == []


async def test_the_default_callback_url_is_used(make_client: Any, receiver: Receiver) -> None:
    client = await make_client(settings(callback_url=receiver.url))
    otp = await create(client)
    await client.delete(f"/otp/{otp['otpId']}", headers=KEY)
    await eventually(lambda: len(receiver.requests) == 1)
    assert receiver.items()[0]["otpId"] == otp["otpId"]


async def test_events_within_the_window_are_grouped_none_lost_none_duplicated(
    make_client: Any, receiver: Receiver
) -> None:
    client = await make_client(settings(callback_batch_window=1.0))
    ids = []
    for _ in range(100):
        otp = await create(client, otpCallbackUrl=receiver.url)
        ids.append(otp["otpId"])
    for otp_id in ids:
        resp = await client.post(
            f"/otp/{otp_id}", json={"pin": await pin_of(client, otp_id)}, headers=KEY
        )
        assert resp.status == 200
    await eventually(lambda: len(receiver.items()) >= 100)
    await asyncio.sleep(0.2)
    got = [item["otpId"] for item in receiver.items()]
    assert sorted(got) == sorted(ids)  # every one, exactly once
    assert len(receiver.requests) < 100
    assert all(len(r.json["data"]) <= 200 for r in receiver.requests)


async def test_a_listing_waits_for_the_batches_open_when_asked(
    make_client: Any, receiver: Receiver
) -> None:
    """On a frozen clock too: an open batch closes once its window passed in real time,
    and GET /_sim/callbacks (or /_sim/callbacks/{id}) waits for it, so what happened so
    far is listed; the other account's open batch is not waited for by a scoped list."""
    client = await make_client(settings(callback_batch_window=0.3))
    otp = await create(client, otpCallbackUrl=receiver.url)
    await client.delete(f"/otp/{otp['otpId']}", headers=KEY)
    body = await (await client.get("/_sim/callbacks", params={"otpId": otp["otpId"]})).json()
    [delivery] = body["callbacks"]
    assert delivery["payload"]["data"][0]["status"] == "CANCELLED"
    other = await create(client, otpCallbackUrl=receiver.url)
    await client.delete(f"/otp/{other['otpId']}", headers=KEY)
    [batch] = client.app[DISPATCHER]._batches.values()
    resp = await client.get(f"/_sim/callbacks/{batch.delivery_id}")
    assert resp.status == 200
    assert (await resp.json())["otpIds"] == [other["otpId"]]


async def test_a_batch_never_holds_more_than_200_items(
    make_client: Any, receiver: Receiver
) -> None:
    client = await make_client(settings(callback_batch_window=30.0))
    ids = [(await create(client, otpCallbackUrl=receiver.url))["otpId"] for _ in range(201)]
    for otp_id in ids:
        await client.delete(f"/otp/{otp_id}", headers=KEY)
    await eventually(lambda: len(receiver.requests) == 1)  # the 200th item sends at once
    assert len(receiver.requests[0].json["data"]) == 200


async def test_500_twice_then_200_is_three_attempts_with_one_webhook_id(
    make_client: Any, receiver: Receiver
) -> None:
    client = await make_client(settings())
    receiver.script = [500, 500, 200]
    otp = await create(client, otpCallbackUrl=receiver.url)
    await client.delete(f"/otp/{otp['otpId']}", headers=KEY)
    await eventually(lambda: len(receiver.requests) == 1)
    [delivery] = deliveries(client, otp["otpId"])
    assert delivery.state == "pending"
    assert delivery.attempts[0].next_retry_at == delivery.attempts[0].at + 5
    sim_of(client).move_clock(advance=5)  # the schedule follows the simulator clock
    await eventually(lambda: len(receiver.requests) == 2)
    sim_of(client).move_clock(advance=300)
    await eventually(lambda: delivery.state == "delivered")
    assert len(receiver.requests) == 3
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    assert len({r.body for r in receiver.requests}) == 1  # the same bytes every time
    assert [a.status_code for a in delivery.attempts] == [500, 500, 200]

    logged = await (await client.get("/_sim/callbacks", params={"otpId": otp["otpId"]})).json()
    [entry] = logged["callbacks"]
    assert entry["status"] == "delivered"
    assert entry["url"] == receiver.url
    assert [a["statusCode"] for a in entry["attempts"]] == [500, 500, 200]
    assert all(a["latencyMs"] >= 0 for a in entry["attempts"])
    assert entry["payload"]["data"][0]["otpId"] == otp["otpId"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_receiver_down_then_up_is_delivered_after_the_clock_advances(
    make_client: Any, aiohttp_server: Any
) -> None:
    client = await make_client(settings())
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    otp = await create(client, otpCallbackUrl=url)
    await client.delete(f"/otp/{otp['otpId']}", headers=KEY)
    [delivery] = deliveries(client)
    await eventually(lambda: len(delivery.attempts) == 1)
    assert delivery.attempts[0].status_code is None
    assert "connection failed" in (delivery.attempts[0].error or "")

    got: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    await aiohttp_server(app, port=port)
    sim_of(client).move_clock(advance=5)
    await eventually(lambda: delivery.state == "delivered")
    assert len(got) == 1


async def test_a_receiver_slower_than_the_timeout_is_a_recorded_timeout_then_retried(
    make_client: Any, receiver: Receiver
) -> None:
    client = await make_client(settings(callback_timeout=0.2))
    receiver.script = [("sleep", 2.0, 200), 200]
    otp = await create(client, otpCallbackUrl=receiver.url)
    await client.delete(f"/otp/{otp['otpId']}", headers=KEY)
    [delivery] = deliveries(client)
    await eventually(lambda: len(delivery.attempts) == 1)
    assert delivery.attempts[0].error == "timeout after 0.2s"
    assert delivery.state == "pending"
    sim_of(client).move_clock(advance=5)
    await eventually(lambda: delivery.state == "delivered")


async def test_signature_verifies_independently(make_client: Any, receiver: Receiver) -> None:
    raw_key = b"0123456789abcdef0123456789abcdef"
    secret = "whsec_" + base64.b64encode(raw_key).decode()
    client = await make_client(settings(callback_secret=secret))
    otp = await create(client, otpCallbackUrl=receiver.url)
    await client.delete(f"/otp/{otp['otpId']}", headers=KEY)
    await eventually(lambda: len(receiver.requests) == 1)
    request = receiver.requests[0]
    webhook_id = request.headers["webhook-id"]
    timestamp = request.headers["webhook-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60  # wall clock, for replay checks
    signed = f"{webhook_id}.{timestamp}.".encode() + request.body
    expected = base64.b64encode(hmac.new(raw_key, signed, hashlib.sha256).digest()).decode()
    version, _, signature = request.headers["webhook-signature"].partition(",")
    assert version == "v1"
    assert hmac.compare_digest(signature, expected)


def test_plain_text_secrets_sign_with_their_utf8_bytes() -> None:
    assert signing_key("plain-secret") == b"plain-secret"
    assert signing_key("whsec_" + base64.b64encode(b"k").decode()) == b"k"
    value = sign("s", "msg_1", 1700000000, b"{}")
    digest = hmac.new(b"s", b"msg_1.1700000000.{}", hashlib.sha256).digest()
    assert value == "v1," + base64.b64encode(digest).decode()


async def test_retry_after_is_honoured_on_429(make_client: Any, receiver: Receiver) -> None:
    client = await make_client(settings())
    receiver.script = [(429, {"Retry-After": "42"}), 200]
    otp = await create(client, otpCallbackUrl=receiver.url)
    await client.delete(f"/otp/{otp['otpId']}", headers=KEY)
    [delivery] = deliveries(client)
    await eventually(lambda: len(delivery.attempts) == 1)
    assert delivery.attempts[0].next_retry_at == delivery.attempts[0].at + 42
    sim_of(client).move_clock(advance=41)
    await asyncio.sleep(0.1)
    assert len(receiver.requests) == 1
    sim_of(client).move_clock(advance=1)
    await eventually(lambda: delivery.state == "delivered")


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    in_a_minute = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 55 <= (retry_after_seconds(in_a_minute) or 0) <= 61


async def test_410_stops_retries_for_that_url(make_client: Any, receiver: Receiver) -> None:
    client = await make_client(settings())
    receiver.script = [500, 410]
    first = await create(client, otpCallbackUrl=receiver.url)
    await client.delete(f"/otp/{first['otpId']}", headers=KEY)
    await eventually(lambda: len(receiver.requests) == 1)
    sim_of(client).move_clock(advance=5)
    await eventually(lambda: deliveries(client)[0].state == "gone")
    sim_of(client).move_clock(advance=10_000)
    await asyncio.sleep(0.1)
    assert len(receiver.requests) == 2


async def test_the_schedule_runs_out_as_failed(make_client: Any, receiver: Receiver) -> None:
    client = await make_client(settings(callback_retry_schedule=(0, 5)))
    receiver.script = [500, 503]
    otp = await create(client, otpCallbackUrl=receiver.url)
    await client.delete(f"/otp/{otp['otpId']}", headers=KEY)
    [delivery] = deliveries(client)
    await eventually(lambda: len(delivery.attempts) == 1)
    sim_of(client).move_clock(advance=5)
    await eventually(lambda: delivery.state == "failed")
    failed = await (await client.get("/_sim/callbacks", params={"status": "failed"})).json()
    assert [c["id"] for c in failed["callbacks"]] == [delivery.delivery_id]
    # A manual resend goes out now.
    resp = await client.post(f"/_sim/callbacks/{delivery.delivery_id}/resend")
    assert resp.status == 202
    await eventually(lambda: delivery.state == "delivered")
    assert len(receiver.requests) == 3


async def test_each_attempt_is_a_live_event(make_client: Any, receiver: Receiver) -> None:
    client = await make_client(settings())
    events: list[dict[str, Any]] = []
    sim_of(client).subscribe(
        lambda e: events.append(e.data) if e.type == "callback.attempt" else None
    )
    otp = await create(client, otpCallbackUrl=receiver.url)
    await client.delete(f"/otp/{otp['otpId']}", headers=KEY)
    await eventually(lambda: len(events) == 1)
    assert events[0]["otpIds"] == [otp["otpId"]]
    assert events[0]["attempt"]["statusCode"] == 200
    assert events[0]["status"] == "delivered"


async def test_the_api_keeps_serving_while_a_receiver_hangs(
    make_client: Any, receiver: Receiver
) -> None:
    client = await make_client(settings(callback_concurrency=2, callback_timeout=30))
    receiver.script = ["hang"] * 10
    for _ in range(10):
        otp = await create(client, otpCallbackUrl=receiver.url)
        await client.delete(f"/otp/{otp['otpId']}", headers=KEY)
    await eventually(lambda: len(receiver.requests) == 2)  # both workers stuck
    served = 0
    for _ in range(200):
        resp = await client.post("/otp", json={"phoneNumber": "+33612345678"}, headers=KEY)
        served += resp.status == 201
    assert served == 200  # counted while every callback worker was blocked
    assert len(receiver.requests) == 2
    receiver.release.set()
    await eventually(lambda: all(d.state == "delivered" for d in deliveries(client)))


async def test_bad_callback_queries(client: Any) -> None:
    resp = await client.get("/_sim/callbacks", params={"status": "lost"})
    assert resp.status == 400
    assert (await client.post("/_sim/callbacks/msg_nope/resend")).status == 404
    assert (await client.get("/_sim/callbacks/msg_nope")).status == 404


async def test_reset_forgets_callbacks(make_client: Any, receiver: Receiver) -> None:
    client = await make_client(settings())
    otp = await create(client, otpCallbackUrl=receiver.url)
    await client.delete(f"/otp/{otp['otpId']}", headers=KEY)
    await eventually(lambda: len(receiver.requests) == 1)
    await client.post("/_sim/reset")
    assert (await (await client.get("/_sim/callbacks")).json())["callbacks"] == []


async def test_shutdown_flushes_open_batches_within_the_grace(
    make_client: Any, receiver: Receiver
) -> None:
    client = await make_client(settings(callback_batch_window=60.0, shutdown_grace=5.0))
    otp = await create(client, otpCallbackUrl=receiver.url)
    await client.delete(f"/otp/{otp['otpId']}", headers=KEY)
    await asyncio.sleep(0.05)
    assert receiver.requests == []  # still in its batch window
    await client.close()  # runs the app's cleanup: flush, then drain in-flight attempts
    assert [item["otpId"] for item in receiver.items()] == [otp["otpId"]]


async def test_shutdown_reports_what_is_still_pending(
    make_client: Any, receiver: Receiver, caplog: Any
) -> None:
    client = await make_client(settings(shutdown_grace=0.2))
    receiver.script = [500]
    otp = await create(client, otpCallbackUrl=receiver.url)
    await client.delete(f"/otp/{otp['otpId']}", headers=KEY)
    await eventually(lambda: len(receiver.requests) == 1)
    await client.close()
    assert "1 callback deliveries still pending" in caplog.text


async def test_beyond_max_pending_new_deliveries_are_dropped_and_recorded(
    make_client: Any, receiver: Receiver
) -> None:
    client = await make_client(settings(callback_max_pending=1))
    receiver.script = [500]
    first = await create(client, otpCallbackUrl=receiver.url)
    await client.delete(f"/otp/{first['otpId']}", headers=KEY)
    await eventually(lambda: len(receiver.requests) == 1)  # failed once: waits to retry
    second = await create(client, otpCallbackUrl=receiver.url)
    await client.delete(f"/otp/{second['otpId']}", headers=KEY)
    dropped = await (await client.get("/_sim/callbacks", params={"status": "dropped"})).json()
    assert [c["otpIds"] for c in dropped["callbacks"]] == [[second["otpId"]]]
    sim_of(client).move_clock(advance=5)
    await eventually(lambda: deliveries(client, first["otpId"])[0].state == "delivered")
    assert len(receiver.requests) == 2  # the dropped one was never sent


# -- fairness: one dead receiver never starves the others ------------------------------


@pytest.fixture
async def black_hole() -> Any:
    """A receiver that accepts connections and never answers; yields its hook URL."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/hook"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def cancelled_with_callbacks(client: Any, url: str, count: int) -> list[str]:
    """``count`` OTPs cancelled in-process (quicker than over HTTP), each one delivery."""
    sim = sim_of(client)
    ids = []
    for _ in range(count):
        otp = await sim.create_otp(
            {"phoneNumber": "+33612345678", "otpCallbackUrl": url}, account="k"
        )
        sim.cancel(otp.otp_id)
        ids.append(otp.otp_id)
    return ids


async def test_a_black_hole_receiver_never_delays_a_healthy_one(
    make_client: Any, receiver: Receiver, black_hole: str
) -> None:
    client = await make_client(settings(callback_timeout=30.0, shutdown_grace=0.1))
    await cancelled_with_callbacks(client, black_hole, 200)
    await asyncio.sleep(0.1)  # every worker the black hole may take is now stuck in it
    started = time.monotonic()
    [healthy] = await cancelled_with_callbacks(client, receiver.url, 1)
    await eventually(lambda: len(receiver.requests) == 1, within=5.0)
    assert receiver.items()[0]["otpId"] == healthy
    assert time.monotonic() - started < 5.0  # generous: it takes milliseconds
    stuck = [d for d in deliveries(client) if d.url == black_hole and d.state == "pending"]
    assert len(stuck) == 200  # still waiting for the black hole, none dropped


async def test_one_receivers_backlog_never_drops_another_s_delivery(
    make_client: Any, receiver: Receiver, black_hole: str
) -> None:
    client = await make_client(
        settings(
            callback_timeout=30.0,
            shutdown_grace=0.1,
            callback_max_pending=100,
            callback_max_pending_per_receiver=40,
        )
    )
    await cancelled_with_callbacks(client, black_hole, 120)
    states = [d.state for d in deliveries(client) if d.url == black_hole]
    assert states.count("pending") == 40
    assert states.count("dropped") == 80
    [healthy] = await cancelled_with_callbacks(client, receiver.url, 1)
    await eventually(lambda: deliveries(client, healthy)[0].state == "delivered")


async def test_a_slow_receiver_holds_at_most_its_share_of_the_workers(
    make_client: Any, receiver: Receiver, aiohttp_server: Any
) -> None:
    client = await make_client(
        settings(callback_concurrency=4, callback_concurrency_per_receiver=2, callback_timeout=30)
    )
    slow = Receiver(script=["hang"] * 10)
    app = web.Application()
    app.router.add_post("/hook", slow.handle)
    slow.url = str((await aiohttp_server(app)).make_url("/hook"))
    await cancelled_with_callbacks(client, slow.url, 10)
    await eventually(lambda: len(slow.requests) == 2)
    await cancelled_with_callbacks(client, receiver.url, 3)
    await eventually(lambda: len(receiver.requests) == 3)
    assert len(slow.requests) == 2  # never more than its two at once
    slow.release.set()
    await eventually(lambda: all(d.state == "delivered" for d in deliveries(client)))
    assert len(slow.requests) == 10


async def test_an_accounts_own_clock_runs_its_retries_only(
    make_client: Any, receiver: Receiver
) -> None:
    client = await make_client(settings())
    receiver.script = [500, 500]
    ids = {}
    for account in ("alice", "bob"):
        headers = {"X-API-KEY": account}
        resp = await client.post(
            "/otp",
            json={"phoneNumber": "+33612345678", "otpCallbackUrl": receiver.url},
            headers=headers,
        )
        ids[account] = (await resp.json())["otpId"]
        await client.delete(f"/otp/{ids[account]}", headers=headers)
    await eventually(lambda: len(receiver.requests) == 2)
    moved = await client.post("/_sim/clock", json={"advance": 5}, params={"account": "alice"})
    alice_now = (await moved.json())["timestamp"]
    # The account's jump answers once the retry it made due was answered (#13).
    assert len(receiver.requests) == 3
    [alices] = deliveries(client, ids["alice"])
    [bobs] = deliveries(client, ids["bob"])
    assert alices.state == "delivered"
    assert alices.attempts[1].at == alice_now  # stamped on alice's clock
    assert [len(alices.attempts), len(bobs.attempts)] == [2, 1]  # bob's retry still waits
    assert bobs.state == "pending"


async def test_on_a_running_clock_a_batch_closes_after_its_window_as_in_real_time(
    make_client: Any, receiver: Receiver, clock: Clock
) -> None:
    clock.freeze(False)  # real time: the simulator clock runs
    client = await make_client(settings(callback_batch_window=0.3))
    first = await create(client, otpCallbackUrl=receiver.url)
    second = await create(client, otpCallbackUrl=receiver.url)
    await client.delete(f"/otp/{first['otpId']}", headers=KEY)
    await client.delete(f"/otp/{second['otpId']}", headers=KEY)
    await eventually(lambda: len(receiver.requests) == 1)  # nobody moved the clock
    assert {item["otpId"] for item in receiver.items()} == {first["otpId"], second["otpId"]}
    [delivery] = deliveries(client)
    await eventually(lambda: len(delivery.attempts) == 1)
    # Its window is simulator time: it closed, and its attempt was due, exactly then.
    assert delivery.attempts[0].at == delivery.created_at + 0.3


async def test_no_callback_to_send_costs_a_change_no_otp_view(
    make_client: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no callback URL (none in the request, none configured) and no live inbox
    open, a verification builds no OTP view for its event (issue 18): the dispatcher
    looks at the OTP itself. With a URL, the callback is the API's OTP object as of
    the change, as before."""
    from otpsim.domain.otp import Otp

    client = await make_client(settings())
    plain = await create(client)
    hooked = await create(client, otpCallbackUrl=receiver.url)
    views: list[str] = []
    to_sim = Otp.to_sim

    def counted(self: Otp) -> dict[str, Any]:
        views.append(self.otp_id)
        return to_sim(self)

    monkeypatch.setattr(Otp, "to_sim", counted)
    pin = await pin_of(client, plain["otpId"])
    resp = await client.post(f"/otp/{plain['otpId']}", json={"pin": pin}, headers=KEY)
    assert resp.status == 200
    assert views == []
    resp = await client.delete(f"/otp/{hooked['otpId']}", headers=KEY)
    assert resp.status == 200
    assert views == [hooked["otpId"]]
    await eventually(lambda: len(receiver.requests) == 1)
    (item,) = receiver.items()
    assert item["otpId"] == hooked["otpId"]
    assert item["status"] == "CANCELLED"
    assert "pin" not in item
