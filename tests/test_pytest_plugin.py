"""The pytest plugin, exercised on users' test files with pytester."""

from __future__ import annotations

from typing import Any

import pytest

SYNC_FLOW = """
import json, urllib.request

def post(url, body, key):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "X-API-KEY": key})
    with urllib.request.urlopen(req) as r:
        return json.load(r)

def test_login(otpsim):
    otp = post(f"{otpsim.url}/otp", {"phoneNumber": "+33612345678"}, otpsim.api_key)
    pin = otpsim.latest_pin("+33612345678", timeout=5)
    assert post(f"{otpsim.url}/otp/{otp['otpId']}", {"pin": pin}, otpsim.api_key) == {"status": "VERIFIED"}
    assert [m["otpId"] for m in otpsim.messages("+33612345678")] == [otp["otpId"]]
    assert otpsim.callbacks(otp["otpId"]) == []
"""

ASYNC_FLOW = """
import aiohttp

async def test_login_async(otpsim):
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{otpsim.url}/otp", json={"phoneNumber": "+33612345678"},
                             headers={"X-API-KEY": otpsim.api_key}) as r:
            otp = await r.json()
        pin = await otpsim.aio.latest_pin(otp_id=otp["otpId"], timeout=5)
        async with http.post(f"{otpsim.url}/otp/{otp['otpId']}", json={"pin": pin},
                             headers={"X-API-KEY": otpsim.api_key}) as r:
            assert (await r.json()) == {"status": "VERIFIED"}
    assert len(await otpsim.aio.messages()) == 1
"""

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""


def test_sync_and_async_tests(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_sync=SYNC_FLOW, test_async=ASYNC_FLOW)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_every_test_starts_clean(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_clean="""
        from otpsim.client import Client

        def test_first(otpsim):
            otpsim.client.create_otp({"phoneNumber": "+33612345678", "ttl": 60})
            otpsim.advance(600)
            otpsim.use_scenario({"network": {"rules": [{"match": "*", "error": 503}]}})
            assert otpsim.otps()[0]["status"] == "EXPIRED"

        def test_second(otpsim):
            assert otpsim.messages() == []
            assert otpsim.otps() == []
            assert abs(otpsim.client.clock()["offset"]) < 60
            assert Client(otpsim.url).scenario()["active"] is False
            otpsim.client.create_otp({"phoneNumber": "+33612345678"})
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_a_failure_inside_the_simulator_fails_the_test_that_caused_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_boom="""
        from otpsim.client import ApiError
        from otpsim.engine.simulator import Simulator

        def test_causes_it(otpsim, monkeypatch):
            async def broken(self, body, *, account, **options):
                raise RuntimeError("the simulator broke here")
            monkeypatch.setattr(Simulator, "create_otp", broken)
            try:
                otpsim.client.create_otp({"phoneNumber": "+33612345678"})
            except ApiError as exc:
                assert exc.status == 500

        def test_innocent(otpsim):
            otpsim.client.create_otp({"phoneNumber": "+33612345678"})
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)  # the call passed; its teardown reports the failure
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_causes_it*",
            "*otpsim failed during this test:*",
            "*RuntimeError: the simulator broke here*",
        ]
    )
    assert "ERROR at teardown of test_innocent" not in result.stdout.str()


def test_settings_and_api_key_can_be_overridden(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from otpsim.config import Settings

        @pytest.fixture(scope="session")
        def otpsim_settings():
            return Settings(port=0, default_from="ACME", api_keys=("team-key",))

        @pytest.fixture(scope="session")
        def otpsim_api_key():
            return "team-key"
        """
    )
    pytester.makepyfile(
        test_conf="""
        from otpsim.client import ApiError, Client

        def test_defaults(otpsim):
            otp = otpsim.client.create_otp({"phoneNumber": "+33612345678"})
            assert otpsim.latest_message(otp_id=otp["otpId"])["from"] == "ACME"
            try:
                Client(otpsim.url, api_key="other").create_otp({"phoneNumber": "+33612345678"})
            except ApiError as exc:
                assert (exc.status, exc.type) == (401, "invalid_api_key")
            else:
                raise AssertionError("strict mode let another key in")
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


PARALLEL = """
import time, pytest

@pytest.mark.parametrize("n", range(4))
def test_parallel(otpsim, n):
    otpsim.client.create_otp({"phoneNumber": "+33612345678"})
    time.sleep(0.5)  # the other worker creates its own meanwhile
    assert len(otpsim.messages("+33612345678")) == 1
"""


def test_xdist_workers_never_see_each_other(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_parallel=PARALLEL)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=4)


def test_xdist_workers_sharing_one_server_never_see_each_other(
    pytester: pytest.Pytester, start_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, base = start_server()
    monkeypatch.setenv("OTPSIM_URL", base)
    pytester.makepyfile(test_parallel=PARALLEL)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=4)
    from support import call

    _, everyone = call("GET", f"{base}/_sim/messages")
    assert {m["account"] for m in everyone["messages"]} == {"pytest-gw0", "pytest-gw1"}


def test_a_missing_external_server_is_a_clear_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTPSIM_URL", "http://127.0.0.1:9")
    pytester.makepyfile(test_x="def test_x(otpsim):\n    pass\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*Connection refused*"])
