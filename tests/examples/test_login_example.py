# An application that logs users in with an SMS code, tested against otpsim.
# (This file is shown in the README, "Use it from pytest"; it runs with the tests.)
import json
import urllib.request


def provider_call(base_url, api_key, method, path, body=None):
    request = urllib.request.Request(
        base_url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"X-API-KEY": api_key, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


class Login:
    """The code under test: it only knows the provider's base URL and API key."""

    def __init__(self, base_url, api_key):
        self.base_url, self.api_key = base_url, api_key

    def start(self, phone):
        status, otp = provider_call(
            self.base_url, self.api_key, "POST", "/otp", {"phoneNumber": phone, "ttl": 120}
        )
        assert status == 201
        return otp["otpId"]

    def finish(self, otp_id, pin):
        status, body = provider_call(
            self.base_url, self.api_key, "POST", f"/otp/{otp_id}", {"pin": pin}
        )
        return status == 200 and body["status"] == "VERIFIED"


def test_the_user_types_the_code_from_the_sms(otpsim):
    login = Login(otpsim.url, otpsim.api_key)
    otp_id = login.start("+33612345678")
    pin = otpsim.latest_pin("+33612345678", timeout=5)  # waits for the SMS; no sleep
    assert login.finish(otp_id, pin)


def test_a_code_typed_too_late_is_refused(otpsim):
    login = Login(otpsim.url, otpsim.api_key)
    otp_id = login.start("+33612345678")
    pin = otpsim.latest_pin("+33612345678")
    otpsim.advance(121)  # the simulator clock: no real waiting
    assert not login.finish(otp_id, pin)
    assert otpsim.otps()[0]["status"] == "EXPIRED"


def test_the_provider_is_down(otpsim):
    otpsim.use_scenario({"network": {"rules": [{"match": "*", "error": 503}]}})
    status, body = provider_call(
        otpsim.url, otpsim.api_key, "POST", "/otp", {"phoneNumber": "+33612345678"}
    )
    assert (status, body["error"]["type"]) == (503, "server_error")
    otpsim.assert_called("/otp", method="POST", status=503, times=1)  # the request journal


async def test_async_code_under_test(otpsim):
    login = Login(otpsim.url, otpsim.api_key)
    otp_id = login.start("+33612345678")
    pin = await otpsim.aio.latest_pin(otp_id=otp_id, timeout=5)  # the coroutine twin
    assert login.finish(otp_id, pin)
