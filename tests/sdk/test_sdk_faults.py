"""Scenario faults as the official SDK (``smscx-client``) meets them: an error status is
the SDK's exception, a connection fault is urllib3's error (the SDK does not wrap it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from conftest import sdk_client
from smscx_client import exceptions as sdk_errors
from smscx_client.api import otp_api
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


@pytest.mark.parametrize("fault", ["reset", "truncated", "garbage"])
def test_a_broken_connection_is_urllib3s_protocol_error(base: str, faults: Any, fault: str) -> None:
    api = api_for(base)
    otp_id = api.new_otp(NewOtpRequest(phone_number=FR)).otp_id
    faults(on="status", fault=fault)
    with pytest.raises((urllib3.exceptions.ProtocolError, urllib3.exceptions.MaxRetryError)):
        api.get_otp_status(otp_id)


def test_a_hang_past_the_clients_timeout(base: str, faults: Any) -> None:
    faults(fault="hang", hang=5)
    with pytest.raises((urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.MaxRetryError)):
        api_for(base).new_otp(NewOtpRequest(phone_number=FR), _request_timeout=0.5)
    _, body = call("GET", f"{base}/_sim/otps")
    assert body["otps"] == []  # a create fault creates nothing
