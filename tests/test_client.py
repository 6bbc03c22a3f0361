"""otpsim.client: the sync client against a live process, the async one in-process."""

from __future__ import annotations

import inspect
import random
import re
import time
from pathlib import Path
from typing import Any

import pytest
from support import FR

from otpsim.client import ApiError, AsyncClient, Call, Calls, Client, NoMessage, Ops, Response
from otpsim.clock import Clock
from otpsim.config import Settings
from otpsim.server.app import create_app


def test_sync_client_end_to_end(start_server: Any, tmp_path: Path) -> None:
    _, base = start_server()
    sim = Client(base, api_key="me", account="me")
    assert sim.health()["status"] == "ok"
    otp = sim.create_otp({"phoneNumber": FR, "ttl": 60, "otpCallbackUrl": "http://127.0.0.1:9/x"})
    pin = sim.latest_pin(FR, timeout=5)
    assert sim.otp(otp["otpId"])["pin"] == pin
    assert sim.verify(otp["otpId"], pin) == {"status": "VERIFIED"}
    assert sim.get_otp(otp["otpId"])["status"] == "VERIFIED"
    assert [m["otpId"] for m in sim.messages(FR)] == [otp["otpId"]]
    assert sim.otps(status="VERIFIED")[0]["otpId"] == otp["otpId"]
    frozen = sim.freeze()
    assert frozen["frozen"] is True
    assert sim.advance(30)["timestamp"] == pytest.approx(frozen["timestamp"] + 30)
    assert sim.set_clock("2031-01-01T00:00:00Z")["now"] == "2031-01-01T00:00:00.000Z"
    deadline = time.monotonic() + 5
    while not (deliveries := sim.callbacks(otp["otpId"])) and time.monotonic() < deadline:
        time.sleep(0.05)  # the callback leaves after its batch window
    assert deliveries[0]["account"] == "me"
    assert sim.resend_callback(deliveries[0]["id"])["id"] == deliveries[0]["id"]

    scenario = tmp_path / "s.yaml"
    scenario.write_text("network:\n  rules:\n    - match: '*'\n      error: 503\n")
    assert sim.use_scenario(scenario)["active"] is True
    with pytest.raises(ApiError) as info:
        sim.create_otp({"phoneNumber": FR})
    assert (info.value.status, info.value.type, info.value.code) == (
        503,
        "server_error",
        1016,
    )
    assert sim.use_scenario("network:\n  rules: []\n")["network"]["rules"] == []
    assert sim.use_scenario({"network": {"seed": 1}})["network"]["seed"] == 1
    assert sim.clear_scenario()["active"] is False

    otp = sim.create_otp({"phoneNumber": FR})
    assert sim.cancel(otp["otpId"]) == {"info": {"id": otp["otpId"]}}
    sim.clear_messages()
    assert sim.messages() == []
    sim.reset()
    assert sim.otps() == []
    assert sim.latest_message(FR) is None
    with pytest.raises(
        NoMessage, match=r"no SMS delivered for phone \+33612345678 to account 'me' within 0\.2s$"
    ):
        sim.latest_pin(FR, timeout=0.2)


def test_a_client_of_one_account_finds_an_otp_of_another_by_id_and_says_where_it_went(
    start_server: Any,
) -> None:
    _, base = start_server()
    app = Client(base, api_key="the-apps-own-key")
    otp = app.create_otp({"phoneNumber": FR})
    helper = Client(base, api_key="helper", account="helper")
    assert helper.latest_pin(otp_id=otp["otpId"]) == app.otp(otp["otpId"])["pin"]
    assert [m["otpId"] for m in helper.messages(otp_id=otp["otpId"])] == [otp["otpId"]]
    assert helper.messages(FR) == []  # by phone: this account only
    with pytest.raises(NoMessage) as info:
        helper.latest_pin(FR, timeout=0.1)
    assert f"but account 'the-apps-own-key' received one (otpId {otp['otpId']})" in str(info.value)
    assert Client(base, account="the-apps-own-key").latest_pin(FR) == helper.latest_pin(
        otp_id=otp["otpId"]
    )


def test_no_message_says_when_the_sms_is_queued_or_was_undelivered(start_server: Any) -> None:
    _, base = start_server()
    sim = Client(base, api_key="me", account="me")
    sim.use_scenario(
        "network:\n  rules:\n"
        "    - {match: '+33612345678', delay: 30}\n"
        "    - {match: '+4915123456789', undelivered: true, note: DE lost}\n"
    )
    late = sim.create_otp({"phoneNumber": FR})
    with pytest.raises(NoMessage) as info:
        sim.latest_pin(FR, timeout=0.1)
    text = str(info.value)
    assert text.startswith(f"no SMS delivered for phone {FR} to account 'me' within 0.1s; ")
    assert f"one is QUEUED (otpId {late['otpId']}), due in " in text
    assert re.search(r"due in (29\.\d|30)s on the simulator clock \(at 20", text), text
    assert "advance the clock" in text
    lost = sim.create_otp({"phoneNumber": "+4915123456789"})
    with pytest.raises(NoMessage) as info:
        sim.latest_pin(otp_id=lost["otpId"], timeout=0.1)
    assert f"it was UNDELIVERED (otpId {lost['otpId']}) by scenario rule(s) 'DE lost'" in str(
        info.value
    )


def test_api_errors_say_what_was_refused(start_server: Any) -> None:
    _, base = start_server()
    with pytest.raises(ApiError) as info:
        Client(base, api_key="k").verify("0b5b4f3e-0000-4000-8000-000000000000", "1")
    assert str(info.value) == (
        "POST /otp/0b5b4f3e-0000-4000-8000-000000000000 answered 404 not_found 2021: Otp ID not found"
    )


async def test_async_client(aiohttp_server: Any) -> None:
    app = create_app(Settings(), clock=Clock(start=0.0, frozen=True), rng=random.Random(1))
    server = await aiohttp_server(app)
    async with AsyncClient(str(server.make_url("")), api_key="k", account="k") as sim:
        assert (await sim.health())["status"] == "ok"
        otp = await sim.create_otp({"phoneNumber": FR, "pinType": "letters"})
        pin = await sim.latest_pin(otp_id=otp["otpId"])
        with pytest.raises(ApiError) as info:
            await sim.verify(otp["otpId"], pin.lower())
        assert info.value.code == 2029
        assert await sim.verify(otp["otpId"], pin) == {"status": "VERIFIED"}
        assert len(await sim.messages()) == 1
        assert (await sim.advance(10))["timestamp"] == 10
        assert (await sim.otp(otp["otpId"]))["verifyAttempts"][0]["result"] == "invalid_pin"
        await sim.reset()
        assert await sim.otps() == []
        with pytest.raises(NoMessage):
            await sim.latest_pin(FR, timeout=0)
        other = await AsyncClient(str(server.make_url("")), api_key="app").__aenter__()
        await other.create_otp({"phoneNumber": FR})
        await other.close()
        with pytest.raises(NoMessage, match="but account 'app' received one"):
            await sim.latest_pin(FR, timeout=0)


# -- one definition, two transports ---------------------------------------------------

TRANSPORT_ONLY = {  # what is not an operation: how each client talks, and nothing else
    Client: {"request", "send"},
    AsyncClient: {"request", "send", "close", "events"},
}


def _public(cls: type) -> dict[str, Any]:
    return {n: getattr(cls, n) for n in dir(cls) if not n.startswith("_")}


def test_both_clients_offer_every_operation_with_the_same_signature() -> None:
    operations = _public(Ops)
    for client in (Client, AsyncClient):
        methods = _public(client)
        assert set(methods) - TRANSPORT_ONLY[client] == set(operations), client
        for name, op in operations.items():
            got, want = inspect.signature(methods[name]), inspect.signature(op)
            assert got.parameters == want.parameters, f"{client.__name__}.{name}"
            assert f"Op[{got.return_annotation}]" == want.return_annotation, name
            assert inspect.iscoroutinefunction(methods[name]) == (client is AsyncClient), name
            assert methods[name].__doc__ == op.__doc__, name


PREEMPTED = Response(404, {"error": {}}, {"Retry-After": "0"})


def test_the_one_core_polls_again_for_the_time_left_when_preempted() -> None:
    op = Ops(Calls()).wait_message(otp_id="o1", timeout=30)
    first = next(op)
    again = op.send(PREEMPTED)
    assert (first.path, again.path) == ("/_sim/messages/latest", "/_sim/messages/latest")
    assert again.params["otpId"] == "o1"
    assert 0 < again.params["wait"] < first.params["wait"] == 30
    with pytest.raises(StopIteration) as done:
        op.send(Response(200, {"otpId": "o1", "pin": "1234"}))
    assert done.value.value == {"otpId": "o1", "pin": "1234"}


async def test_the_async_client_polls_again_when_preempted_too() -> None:
    answers = [PREEMPTED, PREEMPTED, Response(200, {"otpId": "o1", "pin": "4321"})]
    sent: list[Call] = []

    async def scripted(call: Call, *, headers: Any = None) -> Response:
        sent.append(call)
        return answers.pop(0)

    sim = AsyncClient("http://127.0.0.1:9")
    sim.request = scripted  # type: ignore[method-assign]
    assert await sim.latest_pin(otp_id="o1", timeout=30) == "4321"
    assert len(sent) == 3
    await sim.close()
