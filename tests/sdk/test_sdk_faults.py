"""Scenario faults as the official SDK (``smscx-client``) meets them: an error status is
the SDK's exception, a connection fault is urllib3's error (the SDK does not wrap it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from conftest import CLIENT_ID, CLIENT_SECRET, sdk_client
from smscx_client import exceptions as sdk_errors
from smscx_client.api import oauth_api, otp_api
from smscx_client.model.new_otp_request import NewOtpRequest
from support import call

FR = "+33612345678"


@pytest.fixture
def faults(base: str) -> Iterator[Any]:
    """``faults(rule)`` activates a scenario of that rule; cleared after the test."""

    def use(**rule: Any) -> None:
        status, body = call(
            "PUT", f"{base}/_sim/scenario", {"network": {"rules": [{"match": FR, **rule}]}}
        )
        assert status == 200, body

    yield use
    call("DELETE", f"{base}/_sim/scenario")


def api_for(base: str) -> otp_api.OtpApi:
    return otp_api.OtpApi(sdk_client(base))


def pin_of(base: str, otp_id: str) -> str:
    status, body = call("GET", f"{base}/_sim/messages/latest?otpId={otp_id}")
    assert status == 200, body
    return str(body["pin"])


def test_a_503_on_verify_then_the_retry_verifies(base: str, faults: Any) -> None:
    api = api_for(base)
    otp_id = api.new_otp(NewOtpRequest(phone_number=FR, max_attempts=1)).otp_id
    faults(on="verify", sequence=[{"error": 503}, {"ok": True}])
    with pytest.raises(sdk_errors.ServerErrorException):
        api.verify_otp(otp_id, pin_of(base, otp_id))
    status = api.get_otp_status(otp_id)  # no attempt was consumed
    assert str(status.status) == "PENDING"
    assert str(api.verify_otp(otp_id, pin_of(base, otp_id)).status) == "VERIFIED"


def test_a_429_on_status_is_the_sdks_rate_limit_exception(base: str, faults: Any) -> None:
    api = api_for(base)
    otp_id = api.new_otp(NewOtpRequest(phone_number=FR)).otp_id
    faults(on="status", error=429, retry_after=0)
    with pytest.raises(sdk_errors.RateLimitExcedeedException) as info:
        api.get_otp_status(otp_id)
    assert info.value.headers["Retry-After"] == "0"


def test_urllib3_under_the_sdk_retries_a_get_after_retry_after(base: str, faults: Any) -> None:
    api = api_for(base)
    otp_id = api.new_otp(NewOtpRequest(phone_number=FR)).otp_id
    faults(on="status", sequence=[{"error": 429, "retry_after": 0}, {"ok": True}])
    assert str(api.get_otp_status(otp_id).status) == "PENDING"  # the 429 never surfaced


def attempts(base: str, method: str, path: str) -> int:
    """How many requests the journal holds for ``method path`` (urllib3's attempts)."""
    status, body = call("GET", f"{base}/_sim/requests?limit=100")
    assert status == 200, body
    return sum(1 for r in body["requests"] if (r["method"], r["path"]) == (method, path))


@pytest.mark.parametrize("fault", ["reset", "truncated", "garbage"])
def test_a_broken_connection_on_a_get_is_retried_then_max_retry_error(
    base: str, faults: Any, fault: str
) -> None:
    api = api_for(base)
    otp_id = api.new_otp(NewOtpRequest(phone_number=FR)).otp_id
    faults(on="status", fault=fault)
    with pytest.raises(urllib3.exceptions.MaxRetryError) as info:
        api.get_otp_status(otp_id)
    assert isinstance(info.value.reason, urllib3.exceptions.ProtocolError)
    assert attempts(base, "GET", f"/otp/{otp_id}") == 4  # the first try and 3 retries


@pytest.mark.parametrize("fault", ["reset", "truncated", "garbage"])
def test_a_broken_connection_on_a_post_is_one_attempt_and_protocol_error(
    base: str, faults: Any, fault: str
) -> None:
    api = api_for(base)
    otp_id = api.new_otp(NewOtpRequest(phone_number=FR)).otp_id
    faults(on="verify", fault=fault)
    with pytest.raises(urllib3.exceptions.ProtocolError):  # not wrapped, not retried
        api.verify_otp(otp_id, "123456")
    assert attempts(base, "POST", f"/otp/{otp_id}") == 1


def test_a_reset_on_token_is_one_attempt_and_protocol_error(base: str) -> None:
    rule = {"match": CLIENT_ID, "on": "token", "fault": "reset"}
    status, body = call("PUT", f"{base}/_sim/scenario", {"network": {"rules": [rule]}})
    assert status == 200, body
    try:
        login = sdk_client(base, username=CLIENT_ID, password=CLIENT_SECRET)
        with pytest.raises(urllib3.exceptions.ProtocolError):
            oauth_api.OauthApi(login).get_access_token()
        assert attempts(base, "POST", "/oauth/token") == 1
    finally:
        call("DELETE", f"{base}/_sim/scenario")


def test_a_hang_past_the_clients_timeout_on_a_post(base: str, faults: Any) -> None:
    faults(fault="hang", hang=5)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):  # one attempt: not MaxRetryError
        api_for(base).new_otp(NewOtpRequest(phone_number=FR), _request_timeout=0.5)
    _, body = call("GET", f"{base}/_sim/otps")
    assert body["otps"] == []  # a create fault creates nothing
