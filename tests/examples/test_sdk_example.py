# The provider's official Python SDK (smscx-client), pointed at otpsim.
# (This file is shown in the README, "Using the official SDK"; it runs with the tests.)
import pytest
import smscx_client
from smscx_client.api import otp_api
from smscx_client.model.new_otp_request import NewOtpRequest


def sdk_for(otpsim):
    configuration = smscx_client.Configuration(host=otpsim.url, api_key=otpsim.api_key)
    return otp_api.OtpApi(smscx_client.ApiClient(configuration))


def test_the_sdk_sends_and_verifies_a_code(otpsim):
    api = sdk_for(otpsim)
    otp = api.new_otp(NewOtpRequest(phone_number="+33612345678", ttl=120))
    pin = otpsim.latest_pin(otp_id=otp.otp_id, timeout=5)
    assert api.verify_otp(otp.otp_id, pin).status == "VERIFIED"


def test_a_wrong_pin_is_the_sdks_exception(otpsim):
    api = sdk_for(otpsim)
    otp = api.new_otp(NewOtpRequest(phone_number="+33612345678"))
    with pytest.raises(smscx_client.InvalidPinException):
        api.verify_otp(otp.otp_id, "not-the-pin")


def test_the_provider_is_down(otpsim):
    otpsim.use_scenario({"network": {"rules": [{"match": "*", "error": 503}]}})
    with pytest.raises(smscx_client.ServerErrorException):
        sdk_for(otpsim).new_otp(NewOtpRequest(phone_number="+33612345678"))
