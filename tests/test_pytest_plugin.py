"""The pytest plugin, exercised on users' test files with pytester."""

from __future__ import annotations

from pathlib import Path
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


LEAKY_SUITE = """
import pytest

PHONE = "+33612345678"


@pytest.mark.parametrize("n", range(3))
def test_the_provider_is_down(otpsim, n):
    otp = otpsim.client.create_otp({"phoneNumber": PHONE})
    otpsim.use_scenario({"network": {"rules": [{"match": "*", "error": 503}]}})
    otpsim.advance(400)  # this test's OTP expires
    assert otpsim.client.get_otp(otp["otpId"])["status"] == "EXPIRED"


@pytest.mark.parametrize("n", range(3))
def test_creating_an_otp(otpsim, n):
    otp = otpsim.client.create_otp({"phoneNumber": PHONE})
    pin = otpsim.latest_pin(PHONE)
    assert otpsim.client.verify(otp["otpId"], pin)["status"] == "VERIFIED"
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "two xdist workers"])
def test_a_tests_scenario_and_clock_jump_on_a_shared_server_stay_with_it(
    pytester: pytest.Pytester,
    start_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    workers: list[str],
) -> None:
    """The issue's repro: against one ``otpsim serve`` (OTPSIM_URL), a test that turns
    the provider down and jumps the clock, and tests that create OTPs meanwhile or
    after, in the same process or in another xdist worker."""
    _, base = start_server()
    monkeypatch.setenv("OTPSIM_URL", base)
    pytester.makepyfile(test_leaky=LEAKY_SUITE)
    result = pytester.runpytest_subprocess("-p", "xdist", *workers)
    result.assert_outcomes(passed=6)
    from support import call

    _, scenario = call("GET", f"{base}/_sim/scenario")
    assert scenario["active"] is False  # nothing was activated for everyone


def test_a_missing_external_server_is_a_clear_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTPSIM_URL", "http://127.0.0.1:9")
    pytester.makepyfile(test_x="def test_x(otpsim):\n    pass\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*Connection refused*"])


# -- the account trap: the application has its own key, the helpers still see its SMS --

APP_WITH_ITS_OWN_KEY = """
import pytest
import smscx_client
from smscx_client.api import oauth_api, otp_api
from smscx_client.model.new_otp_request import NewOtpRequest

APP_SETTINGS = {"sms_api_key": "test-key", "oauth_id": "my-app", "oauth_secret": "s3cret"}


def app_otp_api(otpsim):
    # The application is configured with its own key, not otpsim.api_key.
    configuration = smscx_client.Configuration(host=otpsim.url, api_key=APP_SETTINGS["sms_api_key"])
    return otp_api.OtpApi(smscx_client.ApiClient(configuration))


def test_latest_pin_by_phone(otpsim):
    api = app_otp_api(otpsim)
    otp = api.new_otp(NewOtpRequest(phone_number="+33612345678"))
    pin = otpsim.latest_pin("+33612345678")
    assert api.verify_otp(otp.otp_id, pin).status == "VERIFIED"
    assert [m["account"] for m in otpsim.messages("+33612345678")] == ["test-key"]
    assert [o["otpId"] for o in otpsim.otps()] == [otp.otp_id]


def test_latest_pin_by_otp_id(otpsim):
    api = app_otp_api(otpsim)
    otp = api.new_otp(NewOtpRequest(phone_number="+33612345678"))
    assert otpsim.latest_message(otp_id=otp.otp_id)["account"] == "test-key"
    assert api.verify_otp(otp.otp_id, otpsim.latest_pin(otp_id=otp.otp_id)).status == "VERIFIED"


def test_oauth_client(otpsim):
    login = smscx_client.Configuration(
        host=otpsim.url, username=APP_SETTINGS["oauth_id"], password=APP_SETTINGS["oauth_secret"]
    )
    token = oauth_api.OauthApi(smscx_client.ApiClient(login)).get_access_token()
    bearer = smscx_client.Configuration(host=otpsim.url, access_token=token.access_token)
    api = otp_api.OtpApi(smscx_client.ApiClient(bearer))
    otp = api.new_otp(NewOtpRequest(phone_number="+33612345678"))
    assert otpsim.latest_message("+33612345678")["account"] == "my-app"  # the client id
    assert api.verify_otp(otp.otp_id, otpsim.latest_pin("+33612345678")).status == "VERIFIED"


async def test_the_async_helpers_too(otpsim):
    otp = app_otp_api(otpsim).new_otp(NewOtpRequest(phone_number="+33612345678"))
    assert await otpsim.aio.latest_pin("+33612345678") == otpsim.latest_pin(otp_id=otp.otp_id)
"""


def test_the_helpers_see_what_an_app_with_its_own_key_sent(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_app=APP_WITH_ITS_OWN_KEY)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


SHARED_SERVER_APP = """
import pytest
import smscx_client
from otpsim.client import NoMessage
from smscx_client.api import otp_api
from smscx_client.model.new_otp_request import NewOtpRequest


def app_otp_api(otpsim):
    configuration = smscx_client.Configuration(host=otpsim.url, api_key="test-key")
    return otp_api.OtpApi(smscx_client.ApiClient(configuration))


def test_by_phone_names_the_account_that_has_it(otpsim):
    app_otp_api(otpsim).new_otp(NewOtpRequest(phone_number="+33612345678"))
    with pytest.raises(NoMessage) as caught:
        otpsim.latest_pin("+33612345678", timeout=0.5)
    print("MESSAGE:", caught.value)


def test_by_otp_id_always_works(otpsim):
    api = app_otp_api(otpsim)
    otp = api.new_otp(NewOtpRequest(phone_number="+33612345678"))
    assert api.verify_otp(otp.otp_id, otpsim.latest_pin(otp_id=otp.otp_id)).status == "VERIFIED"
"""

NAMED_ACCOUNT = """
import pytest

@pytest.fixture(scope="session")
def otpsim_account():
    return "test-key"  # as the application authenticates
"""

SHARED_SERVER_NAMED = """
import smscx_client
from smscx_client.api import otp_api
from smscx_client.model.new_otp_request import NewOtpRequest


def test_by_phone(otpsim):
    configuration = smscx_client.Configuration(host=otpsim.url, api_key="test-key")
    api = otp_api.OtpApi(smscx_client.ApiClient(configuration))
    otp = api.new_otp(NewOtpRequest(phone_number="+33612345678"))
    assert api.verify_otp(otp.otp_id, otpsim.latest_pin("+33612345678")).status == "VERIFIED"
    assert [m["account"] for m in otpsim.messages()] == ["test-key"]
"""


def test_on_a_shared_server_the_error_names_the_account_and_the_fix(
    pytester: pytest.Pytester, start_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, base = start_server()
    monkeypatch.setenv("OTPSIM_URL", base)
    pytester.makepyfile(test_shared=SHARED_SERVER_APP)
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*MESSAGE: no SMS delivered for phone +33612345678 to account 'pytest-main' within "
            "0.5s; but account 'test-key' received one (otpId *): the application "
            "authenticates as 'test-key' (its API key or OAuth client id). Look there: "
            "account='test-key' (Client, otpsim.testing.Controller), or return 'test-key' "
            "from the otpsim_account fixture"
        ]
    )
    # Named as the application authenticates, the helpers see it (and reset it).
    pytester.makeconftest(NAMED_ACCOUNT)
    pytester.makepyfile(test_shared=SHARED_SERVER_NAMED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=1)


# -- the marker -------------------------------------------------------------------------

MARKED = """
import pytest
from otpsim.client import ApiError

DOWN = {"network": {"rules": [{"match": "*", "error": 503}]}}


@pytest.mark.otpsim(scenario=DOWN)
def test_a_scenario_from_the_start(otpsim):
    with pytest.raises(ApiError) as caught:
        otpsim.client.create_otp({"phoneNumber": "+33612345678"})
    assert caught.value.status == 503


@pytest.mark.otpsim(scenario="slow.yaml")
def test_a_scenario_file_beside_the_test(otpsim):
    otp = otpsim.client.create_otp({"phoneNumber": "+33612345678"})
    assert otpsim.messages()[0]["status"] == "QUEUED"
    otpsim.advance(31)
    assert otpsim.latest_message(otp_id=otp["otpId"])["status"] == "DELIVERED"


@pytest.mark.otpsim(settings={"default_from": "ACME", "default_pin_length": 4})
def test_settings_of_its_own(otpsim):
    otpsim.client.create_otp({"phoneNumber": "+33612345678"})
    message = otpsim.latest_message("+33612345678")
    assert (message["from"], len(message["pin"])) == ("ACME", 4)


def test_unmarked_tests_are_as_usual(otpsim):
    assert otpsim.client.scenario()["active"] is False
    otpsim.client.create_otp({"phoneNumber": "+33612345678"})
    assert otpsim.latest_message("+33612345678")["from"] != "ACME"


@pytest.mark.otpsim(settings={"no_such_setting": 1})
def test_a_typo_is_named(otpsim):
    pass
"""


def test_the_marker_sets_up_one_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_marked=MARKED)
    (pytester.path / "slow.yaml").write_text(
        "network:\n  rules:\n    - match: '*'\n      delay: 30\n", encoding="utf-8"
    )
    result = pytester.runpytest_subprocess("--strict-markers", "-p", "no:randomly")
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.otpsim(settings=...): unknown Settings field(s) no_such_setting*"]
    )
    assert "not registered" not in result.stdout.str()


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    """Every pytest run where otpsim is installed loads the plugin: it must stay cheap."""
    import subprocess
    import sys

    probe = (
        "import sys, otpsim.pytest_plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('aiohttp', 'phonenumbers', 'yaml', 'jinja2', 'babel', 'orjson', 'websockets') "
        "or m in ('otpsim.client', 'otpsim.config', 'otpsim.testing')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


BAD_SETTINGS = """
import pytest


@pytest.mark.otpsim(settings={"default_pin_length": 99})
def test_pin_length(otpsim):
    pass


@pytest.mark.otpsim(settings={"default_ttl": -5})
def test_ttl(otpsim):
    pass


@pytest.mark.otpsim(settings={"default_pin_type": "emoji"})
def test_pin_type(otpsim):
    pass


@pytest.mark.otpsim(settings={"fixed_pins": [["+33612345678", "123456"]]})
def test_fixed_pins(otpsim):
    pass


@pytest.mark.otpsim(settings={"fixed_pins": ["+33612345678=123456"], "api_keys": ("k",)})
def test_values_as_a_config_file_gives_them(otpsim):
    otpsim.client.api_key = "k"
    otpsim.client.create_otp({"phoneNumber": "+33612345678"})
    assert otpsim.latest_pin("+33612345678") == "123456"
"""


def test_bad_marker_settings_are_one_line_naming_marker_and_key(
    pytester: pytest.Pytester,
) -> None:
    """Marker settings get the parsers and checks of a config file, not a 500 later."""
    pytester.makepyfile(test_bad_settings=BAD_SETTINGS)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, errors=4)
    result.stdout.fnmatch_lines_random(
        [
            "*@pytest.mark.otpsim(settings=...): default_pin_length: *10*",
            "*@pytest.mark.otpsim(settings=...): default_ttl: *",
            "*@pytest.mark.otpsim(settings=...): default_pin_type: *",
            "*@pytest.mark.otpsim(settings=...): fixed_pins: expected*",
        ]
    )
    assert "KeyError" not in result.stdout.str()
    assert "TypeError" not in result.stdout.str()


def test_a_marker_scenario_file_not_found_says_where_it_looked(pytester: pytest.Pytester) -> None:
    sub = pytester.mkdir("sub")
    (sub / "test_missing.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.otpsim(scenario='nope.yaml')\n"
        "def test_missing(otpsim):\n"
        "    pass\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "sub")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.otpsim(scenario='nope.yaml'): no such file; looked for "
            f"{sub / 'nope.yaml'} (beside the test file) and {pytester.path / 'nope.yaml'} "
            "(the current directory)"
        ]
    )
    assert "FileNotFoundError" not in result.stdout.str()


# -- a shared server: the account the helpers act on, and the one the app uses ---------

MISNAMED = """
import pytest
from otpsim.client import Client

PHONE = "+33612345678"


def test_the_scenario_went_to_an_account_the_app_never_used(otpsim):
    otpsim.use_scenario({"network": {"rules": [{"match": "*", "error": 503}]}})
    Client(otpsim.url, api_key="myapp-key").create_otp({"phoneNumber": PHONE})  # the app


def test_the_app_uses_the_helpers_account(otpsim):
    otpsim.use_scenario({"network": {"rules": []}})
    otpsim.advance(10)
    Client(otpsim.url, api_key=otpsim.api_key).create_otp({"phoneNumber": PHONE})
"""


def test_a_scenario_for_an_account_the_app_never_used_is_a_warning(
    pytester: pytest.Pytester, start_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, base = start_server()
    monkeypatch.setenv("OTPSIM_URL", base)
    pytester.makepyfile(test_misnamed=MISNAMED)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*test_the_scenario_went_to_an_account_the_app_never_used*",
            "*OtpsimAccountWarning: use_scenario acted on account 'pytest-main', which made "
            "no provider request in this test, while account 'myapp-key' did*",
        ]
    )


def readme_conftest() -> str:
    """The README's per-worker ``otpsim_account`` recipe for a shared simulator."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text.split("**A shared simulator.**", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readmes_per_worker_account_recipe_keeps_xdist_workers_apart(
    pytester: pytest.Pytester, start_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, base = start_server()
    monkeypatch.setenv("OTPSIM_URL", base)
    pytester.makepyfile(
        myapp="""
        from otpsim.client import Client

        API_KEY = "set-by-the-tests"  # the application's setting


        def start_login(url, phone):
            return Client(url, api_key=API_KEY).create_otp({"phoneNumber": phone})
        """
    )
    pytester.makeini(INI)
    pytester.makeconftest(readme_conftest())
    pytester.makepyfile(
        test_app="""
        import pytest
        import myapp

        PHONE = "+33612345678"


        @pytest.mark.parametrize("n", range(4))
        def test_login(otpsim, n):
            otpsim.use_scenario({"network": {"rules": [{"match": "*", "delay": 30}]}})
            otp = myapp.start_login(otpsim.url, PHONE)
            assert otpsim.messages(PHONE)[0]["status"] == "QUEUED"  # this account's rules
            otpsim.advance(30)
            assert otpsim.latest_pin(PHONE) == otpsim.client.otp(otp["otpId"])["pin"]
            assert len(otpsim.messages()) == 1  # never another worker's
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist", "-W", "error")
    result.assert_outcomes(passed=4)
    from support import call

    _, everyone = call("GET", f"{base}/_sim/messages")
    assert {m["account"] for m in everyone["messages"]} == {"myapp-gw0", "myapp-gw1"}


def test_a_failed_assert_called_points_at_the_users_line_not_the_helpers(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_called="""
        def test_called(otpsim):
            otpsim.assert_called("/otp")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert 'otpsim.assert_called("/otp")' in out
    assert "_entries = self.client.requests" not in out
    assert "raise AssertionError(problem)" not in out  # the helpers' frames are hidden
