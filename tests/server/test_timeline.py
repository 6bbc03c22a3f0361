"""Exact virtual time: a clock jump runs every timed job in due order, each at its own
due time (delayed SMS, expiry, callback retries, token expiry), and a seeded run
replays event for event. Observed as a user would: the websocket and the control API."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient
from support import KEY, START, create

from otpsim.clock import Clock, iso
from otpsim.config import Settings
from otpsim.server.app import create_app

DELAYED = "+15005550003"  # a magic number: its SMS arrives after 30 s of simulator time


async def next_event(ws: Any) -> dict[str, Any]:
    """The next event of the timeline (the request journal's entries left out)."""
    while True:
        message = await asyncio.wait_for(ws.receive(), timeout=5)
        assert message.type == WSMsgType.TEXT, message
        event = json.loads(message.data)
        if event["type"] != "request.logged":
            return event  # type: ignore[no-any-return]


async def events(ws: Any, count: int) -> list[dict[str, Any]]:
    return [await next_event(ws) for _ in range(count)]


def at(seconds: float) -> str:
    """The simulator time ``seconds`` after the test's start, as the API writes it."""
    return iso(START + seconds)


async def test_the_issue_delayed_sms_then_expiry_each_at_its_own_time(client: Any) -> None:
    """#13: ttl 300, an SMS delayed 30 s, the clock advanced 400 s."""
    async with client.ws_connect("/_sim/ws") as ws:
        await next_event(ws)  # hello
        otp = await create(client, phoneNumber=DELAYED, ttl=300)
        assert [e["type"] for e in await events(ws, 2)] == ["otp.created", "message.created"]
        await client.post("/_sim/clock", json={"advance": 400})
        clock, first, second = await events(ws, 3)
    assert clock["type"] == "clock"
    # The SMS arrived at created + 30 s, then the OTP expired at its dateExpires.
    assert (first["type"], first["data"]["status"]) == ("message.delivered", "DELIVERED")
    assert first["data"]["deliveredAt"] == at(30) == iso(START + 30)
    assert (second["type"], second["data"]["status"]) == ("otp.updated", "EXPIRED")
    assert second["data"]["dateUpdated"] == otp["dateExpires"] == at(300)
    # The control API (what the inbox reads) says the same.
    message = (await (await client.get("/_sim/messages")).json())["messages"][0]
    assert message["deliveredAt"] == at(30)
    stored = await (await client.get(f"/_sim/otps/{otp['otpId']}")).json()
    assert (stored["status"], stored["dateUpdated"]) == ("EXPIRED", at(300))


def failing_receiver() -> web.Application:
    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/hook", hook)
    return app


SETTINGS = Settings(
    token_ttl=200,
    callback_batch_window=0.0,
    callback_retry_schedule=(0.0, 5.0, 300.0, 1800.0),
    callback_concurrency_per_receiver=1,  # one receiver, one attempt at a time: FIFO
)


async def jump_over_everything(
    aiohttp_client: Any, hook: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    """One run on a fresh simulator: a token, a delayed SMS, an OTP expiring, a callback
    being retried; then the clock jumps 400 s. Returns the events before the jump, those
    after it, and the OTP ids involved."""
    app = create_app(SETTINGS, clock=Clock(start=START, frozen=True), rng=random.Random(7))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    async with client.ws_connect("/_sim/ws") as ws:
        await next_event(ws)  # hello
        basic = "Basic " + base64.b64encode(b"app:secret").decode()
        token = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": basic},
        )
        assert token.status == 200
        late = await create(client, phoneNumber=DELAYED, ttl=300, otpCallbackUrl=hook)
        cancelled = await create(client, otpCallbackUrl=hook)
        await client.delete(f"/otp/{cancelled['otpId']}", headers=KEY)
        before = await events(ws, 2 + 3 + 1 + 1)  # created x2, delivered once, update, attempt
        assert [e["type"] for e in before][-1] == "callback.attempt"
        assert before[-1]["data"]["attempt"]["at"] == at(0)
        assert before[-1]["data"]["attempt"]["nextRetryAt"] == at(5)

        await client.post("/_sim/clock", json={"advance": 400})
        after = await events(ws, 4 + 4)  # clock, SMS, token, expiry; four attempts
        ids = {"late": late["otpId"], "cancelled": cancelled["otpId"]}
        return before, after, ids


def summary(event: dict[str, Any]) -> tuple[Any, ...]:
    data = event["data"]
    kind = event["type"]
    if kind == "clock":
        return (kind, data["now"])
    if kind == "message.delivered":
        return (kind, data["otpId"], data["deliveredAt"])
    if kind == "token.expired":
        return (kind, data["clientId"], data["expiredAt"])
    if kind == "otp.updated":
        return (kind, data["otpId"], data["status"], data["dateUpdated"])
    attempt = data["attempt"]
    return (kind, data["otpIds"], attempt["number"], attempt["at"], attempt["nextRetryAt"])


@pytest.fixture
async def hook(aiohttp_server: Any) -> str:
    """A callback receiver on 127.0.0.1 that answers every request 500."""
    receiver = await aiohttp_server(failing_receiver())
    return str(receiver.make_url("/hook"))


async def test_a_clock_jump_fires_every_job_in_due_order_at_its_due_time(
    aiohttp_client: Any, hook: str
) -> None:
    _, after, ids = await jump_over_everything(aiohttp_client, hook)
    late, cancelled = [ids["late"]], [ids["cancelled"]]
    assert [summary(e) for e in after] == [
        ("clock", at(400)),
        # Jobs done in the jump, in due order, each stamped with its due time.
        # Callback attempts are real HTTP: the jump waits for each before it runs the
        # jobs due later, so they fall in due order too. The cancel's retry at +5 (its
        # next at +5+300) comes before the SMS due at +30.
        ("callback.attempt", cancelled, 2, at(5), at(305)),
        ("message.delivered", ids["late"], at(30)),
        ("token.expired", "app", at(200)),
        ("otp.updated", ids["late"], "EXPIRED", at(300)),
        # The expiry's callback at +300, its retry at +305 (a tie with the cancel's:
        # scheduled later, goes later).
        ("callback.attempt", late, 1, at(300), at(305)),
        ("callback.attempt", cancelled, 3, at(305), at(2105)),
        ("callback.attempt", late, 2, at(305), at(605)),
    ]


def without_wall_clock(stream: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stream minus what real time decides: an HTTP attempt's latency, and the
    clock's offset from the machine's clock."""
    clean = json.loads(json.dumps(stream))
    for event in clean:
        if event["type"] == "callback.attempt":
            del event["data"]["attempt"]["latencyMs"]
        if event["type"] == "clock":
            del event["data"]["offset"]
    return clean  # type: ignore[no-any-return]


async def test_the_same_seed_replays_the_same_event_stream(aiohttp_client: Any, hook: str) -> None:
    *first, _ = await jump_over_everything(aiohttp_client, hook)
    *second, _ = await jump_over_everything(aiohttp_client, hook)
    stream = without_wall_clock(first[0] + first[1])
    assert len(stream) == 15
    assert stream == without_wall_clock(second[0] + second[1])


async def test_an_accounts_reset_also_stops_its_sms_on_their_way(client: Any) -> None:
    mine = await client.post("/otp", json={"phoneNumber": "+15005550004"}, headers=KEY)
    theirs = await client.post(
        "/otp", json={"phoneNumber": "+15005550004"}, headers={"X-API-KEY": "other"}
    )
    assert (mine.status, theirs.status) == (201, 201)
    resp = await client.post("/_sim/reset", params={"account": KEY["X-API-KEY"]})
    assert resp.status == 200
    await client.post("/_sim/clock", json={"advance": 400})  # past the 5-minute delay
    mine_now = await (
        await client.get("/_sim/messages", params={"account": KEY["X-API-KEY"]})
    ).json()
    assert mine_now["messages"] == []  # no SMS arrives for an OTP that no longer exists
    theirs_now = await (await client.get("/_sim/messages", params={"account": "other"})).json()
    assert [m["status"] for m in theirs_now["messages"]] == ["DELIVERED"]  # others' still do


# -- callback batches and attempts on the simulator clock ------------------------------

WINDOW = 2.0  # seconds of simulator time: a batch's window


class Scripted:
    """A callback receiver answering from a script (then 200), recording each request's
    OTP ids; one for both runs of a replay, so that the callback URL is the same."""

    def __init__(self) -> None:
        self.answers: list[int] = []
        self.seen: list[list[str]] = []
        self.url = ""

    async def hook(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.seen.append([item["otpId"] for item in body["data"]])
        return web.Response(status=self.answers.pop(0) if self.answers else 200)


@pytest.fixture
async def scripted(aiohttp_server: Any) -> Scripted:
    receiver = Scripted()
    app = web.Application()
    app.router.add_post("/hook", receiver.hook)
    receiver.url = str((await aiohttp_server(app)).make_url("/hook"))
    return receiver


async def until_clock(ws: Any) -> list[dict[str, Any]]:
    """Every event up to (not including) the next ``clock`` event."""
    got = []
    while (event := await next_event(ws))["type"] != "clock":
        got.append(event)
    return got


async def jump_over_batches(
    aiohttp_client: Any, receiver: Scripted
) -> tuple[list[dict[str, Any]], dict[str, str], list[Any], list[list[str]]]:
    """A fresh seeded simulator with a 2 s batch window and a receiver answering 500
    once, then 200: an OTP with a 30 s delayed SMS and a 300 s TTL, three expiring at
    +60, +61 and +63; then the clock jumps 400 s. Returns the events of the jump (all
    published before its answer), the OTP ids, the callback log read right after the
    answer, and what the receiver got."""
    receiver.answers, receiver.seen = [500], []
    hook = receiver.url
    settings = Settings(
        callback_batch_window=WINDOW,
        callback_retry_schedule=(0.0, 5.0, 300.0),
        callback_concurrency_per_receiver=1,
    )
    app = create_app(settings, clock=Clock(start=START, frozen=True), rng=random.Random(11))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    async with client.ws_connect("/_sim/ws") as ws:
        await next_event(ws)  # hello
        ids = {
            "late": (await create(client, phoneNumber=DELAYED, ttl=300, otpCallbackUrl=hook)),
            "b": (await create(client, ttl=60, otpCallbackUrl=hook)),
            "c": (await create(client, ttl=61, otpCallbackUrl=hook)),
            "d": (await create(client, ttl=63, otpCallbackUrl=hook)),
        }
        resp = await client.post("/_sim/clock", json={"advance": 400})
        assert resp.status == 200
        # Read at once: the jump's answer came after every attempt it made due.
        log = (await (await client.get("/_sim/callbacks")).json())["callbacks"]
        received = list(receiver.seen)
        await client.post("/_sim/clock", json={"advance": 0})  # a marker on the socket
        before = await until_clock(ws)
        immediate = ["otp.created", "message.created", "message.delivered"]
        assert [e["type"] for e in before] == ["otp.created", "message.created"] + immediate * 3
        after = await until_clock(ws)
    return after, {k: v["otpId"] for k, v in ids.items()}, log, received


def attempt_summary(event: dict[str, Any]) -> tuple[Any, ...]:
    if event["type"] != "callback.attempt":
        return summary(event)
    data, attempt = event["data"], event["data"]["attempt"]
    return (
        "callback.attempt", data["otpIds"], attempt["number"], attempt["statusCode"],
        data["status"], attempt["at"], attempt["nextRetryAt"],
    )  # fmt: skip


async def test_a_jump_closes_batches_and_makes_attempts_in_due_order_at_due_times(
    aiohttp_client: Any, scripted: Scripted
) -> None:
    after, ids, log, received = await jump_over_batches(aiohttp_client, scripted)
    late, b, c, d = ids["late"], ids["b"], ids["c"], ids["d"]
    assert [attempt_summary(e) for e in after] == [
        ("message.delivered", late, at(30)),
        # b and c expire within one window: one batch, closed at +60+2 on the
        # simulator clock, its attempt due then (500: the retry at +62+5).
        ("otp.updated", b, "EXPIRED", at(60)),
        ("otp.updated", c, "EXPIRED", at(61)),
        ("callback.attempt", [b, c], 1, 500, "pending", at(62), at(67)),
        # d expires after b's window closed: a batch of its own, closed at +63+2,
        # which comes before the retry due at +67.
        ("otp.updated", d, "EXPIRED", at(63)),
        ("callback.attempt", [d], 1, 200, "delivered", at(65), None),
        ("callback.attempt", [b, c], 2, 200, "delivered", at(67), None),
        ("otp.updated", late, "EXPIRED", at(300)),
        ("callback.attempt", [late], 1, 200, "delivered", at(302), None),
    ]
    # The receiver got them in that order, before the jump answered.
    assert received == [[b, c], [d], [b, c], [late]]
    # The callback log read right after the jump's answer shows every attempt.
    attempts = {
        tuple(entry["otpIds"]): [(a["at"], a["statusCode"]) for a in entry["attempts"]]
        for entry in log
    }
    assert attempts == {
        (b, c): [(at(62), 500), (at(67), 200)],
        (d,): [(at(65), 200)],
        (late,): [(at(302), 200)],
    }
    assert {entry["status"] for entry in log} == {"delivered"}
    created = {tuple(entry["otpIds"]): entry["createdAt"] for entry in log}
    assert created == {(b, c): at(60), (d,): at(63), (late,): at(300)}


async def test_a_seeded_run_with_batches_replays_ids_and_events(
    aiohttp_client: Any, scripted: Scripted
) -> None:
    first, first_ids, first_log, _ = await jump_over_batches(aiohttp_client, scripted)
    second, second_ids, second_log, _ = await jump_over_batches(aiohttp_client, scripted)
    assert first_ids == second_ids
    assert without_wall_clock(first) == without_wall_clock(second)
    delivery_ids = [e["data"]["deliveryId"] for e in first if e["type"] == "callback.attempt"]
    assert len(set(delivery_ids)) == 3  # three batches, each its own webhook id
    for log in (first_log, second_log):
        for entry in log:
            for attempt in entry["attempts"]:
                del attempt["latencyMs"]
    assert first_log == second_log
