"""The request journal from a test's side: the clients' operations, otpsim.testing's
``requests`` and ``assert_called`` (whose failure explains itself)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from support import FR

from otpsim.client import AsyncClient, Client, called_problem
from otpsim.clock import Clock
from otpsim.config import Settings
from otpsim.server.app import create_app
from otpsim.testing import Controller, Otpsim

DOWN = {"network": {"rules": [{"match": "+336*", "error": 503, "note": "FR down"}]}}


@pytest.fixture(scope="module")
def controller() -> Iterator[Controller]:
    controller = Controller()
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture
def otpsim(controller: Controller) -> Otpsim:
    return controller.fresh()


def app(otpsim: Otpsim, key: str = "app-key") -> Client:
    """The application under test: its own API key."""
    return Client(otpsim.url, api_key=key)


def test_requests_lists_what_the_application_sent_refusals_included(otpsim: Otpsim) -> None:
    otpsim.use_scenario(DOWN)
    code = app(otpsim).request(Client(otpsim.url).calls.create_otp({"phoneNumber": FR}))
    assert code.status == 503
    app(otpsim).create_otp({"phoneNumber": "+4915123456789"})
    [down] = otpsim.requests(path="/otp", status=503)
    assert (down["account"], down["phoneNumber"], down["rules"]) == ("app-key", FR, ["FR down"])
    assert len(otpsim.requests(path="/otp*")) == 2
    assert len(otpsim.requests(status="2xx", method="post")) == 1
    assert otpsim.requests(phone=FR)[0]["status"] == 503


def test_assert_called_passes_on_what_was_called(otpsim: Otpsim) -> None:
    sim = app(otpsim)
    otp = sim.create_otp({"phoneNumber": FR})
    pin = otpsim.latest_pin(FR)
    sim.verify(otp["otpId"], pin)
    otpsim.assert_called("/otp", method="POST", status=201, times=1, body={"phoneNumber": FR})
    otpsim.assert_called(f"/otp/{otp['otpId']}", body={"pin": pin})  # PINs as sent
    otpsim.assert_called("/otp*", times=2)
    otpsim.assert_called("/oauth/token", times=0)


def test_a_failed_assert_called_lists_what_was_called_closest_first(otpsim: Otpsim) -> None:
    sim = app(otpsim)
    otp = sim.create_otp({"phoneNumber": FR})
    sim.request(sim.calls.verify(otp["otpId"], "000000"))  # wrong PIN: 400
    sim.request(sim.calls.get_otp(otp["otpId"]))
    Client(otpsim.url).request(sim.calls.create_otp({"phoneNumber": FR}))  # no key: 401
    with pytest.raises(AssertionError) as failed:
        otpsim.assert_called("/otp", method="POST", status=503)
    text = str(failed.value)
    assert text.startswith(
        "expected POST /otp with status 503 to be called at least once, but it was called "
        "0 time(s). Requests received (closest first):\n"
    )
    lines = text.splitlines()[1:]
    assert len(lines) == 4
    # Same method and path first (newest first among them), then the rest.
    assert " POST /otp -> 401 invalid_api_key " in lines[0]
    assert " POST /otp -> 201 " in lines[1]
    assert f"/otp/{otp['otpId']} -> 400 " in lines[2]
    assert "'pin': '000000'" in lines[2]  # the helper runs in the test: PINs as sent
    with pytest.raises(AssertionError, match=r"to be called 2 time\(s\), but it was called 1"):
        otpsim.assert_called("/otp", status=201, times=2)
    with pytest.raises(AssertionError, match=r"POST /otp with a body like \{'phoneNumber'"):
        otpsim.assert_called("/otp", method="POST", body={"phoneNumber": "+4915123456789"})


def test_a_failed_assert_called_on_a_pin_shows_the_pin_the_application_sent(
    otpsim: Otpsim,
) -> None:
    sim = app(otpsim)
    otp = sim.create_otp({"phoneNumber": FR})
    sim.request(sim.calls.verify(otp["otpId"], "123123"))
    with pytest.raises(AssertionError) as failed:
        otpsim.assert_called(f"/otp/{otp['otpId']}", body={"pin": "000000"})
    text = str(failed.value)
    assert "'pin': '123123'" in text  # what the application sent, to compare with
    assert otpsim.requests(method="POST", pins=True)[0]["body"] == {"pin": "123123"}
    assert otpsim.requests(method="POST")[0]["body"] == {"pin": "****"}  # masked by default


async def test_aio_has_assert_called(otpsim: Otpsim) -> None:
    sim = app(otpsim)
    otp = sim.create_otp({"phoneNumber": FR})
    sim.request(sim.calls.verify(otp["otpId"], "123123"))
    await otpsim.aio.assert_called("/otp", method="POST", times=1)
    with pytest.raises(AssertionError, match="'pin': '123123'"):
        await otpsim.aio.assert_called(f"/otp/{otp['otpId']}", body={"pin": "000000"})


def test_assert_called_on_an_empty_journal_says_so(otpsim: Otpsim) -> None:
    with pytest.raises(AssertionError, match="no request was received at all"):
        otpsim.assert_called("/otp")


def test_a_bad_status_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="status must be"):
        called_problem([], "/otp", status="5xy")


def test_the_helpers_see_their_own_account_on_a_shared_server(start_server: Any) -> None:
    _, base = start_server()
    with Controller(url=base, api_key="mine") as otpsim:
        otpsim.client.create_otp({"phoneNumber": FR})
        Client(base, api_key="theirs").create_otp({"phoneNumber": FR})
        assert [r["account"] for r in otpsim.requests()] == ["mine"]
        otpsim.assert_called("/otp", times=1)
        otpsim.client.clear_requests()
        assert otpsim.requests() == []
        assert Client(base).requests()[0]["account"] == "theirs"  # another's stays


async def test_the_async_client_reads_and_waits(aiohttp_server: Any) -> None:
    server = await aiohttp_server(
        create_app(Settings(), clock=Clock(start=0.0, frozen=True), rng=random.Random(1))
    )
    async with AsyncClient(str(server.make_url("")), api_key="k") as sim:
        assert await sim.latest_request() is None
        otp = await sim.create_otp({"phoneNumber": FR})
        latest = await sim.latest_request("/otp", status=201, wait=1)
        assert latest is not None
        assert latest["otpId"] == otp["otpId"]
        pin = await sim.latest_pin(otp_id=otp["otpId"])
        await sim.verify(otp["otpId"], pin)
        shown = await sim.requests(otp_id=otp["otpId"], method="POST", pins=True)
        assert shown[0]["body"] == {"pin": pin}
        await sim.clear_requests()
        assert await sim.requests() == []
