# An application that sends its codes with the official SDK, configured from its own
# settings, tested with the otpsim fixture. (This file is shown in the README, "Using
# the official SDK"; it runs with the tests.)
import pytest
import smscx_client
from smscx_client.api import oauth_api, otp_api
from smscx_client.model.new_otp_request import NewOtpRequest

APP_SETTINGS = {"sms_api_key": "test-key", "sms_app_id": "my-app", "sms_app_secret": "s3cret"}


def otp_api_from_settings(host, **credentials):
    """The application's own client: otpsim only replaces the provider's host."""
    configuration = smscx_client.Configuration(host=host, **credentials)
    return otp_api.OtpApi(smscx_client.ApiClient(configuration))


def test_the_app_with_its_own_api_key(otpsim):
    api = otp_api_from_settings(otpsim.url, api_key=APP_SETTINGS["sms_api_key"])
    otp = api.new_otp(NewOtpRequest(phone_number="+33612345678"))
    pin = otpsim.latest_pin("+33612345678")  # whatever key the app is configured with
    assert api.verify_otp(otp.otp_id, pin).status == "VERIFIED"


def test_the_app_with_oauth(otpsim):
    login = smscx_client.Configuration(
        host=otpsim.url,
        username=APP_SETTINGS["sms_app_id"],
        password=APP_SETTINGS["sms_app_secret"],
    )
    token = oauth_api.OauthApi(smscx_client.ApiClient(login)).get_access_token()
    api = otp_api_from_settings(otpsim.url, access_token=token.access_token)
    otp = api.new_otp(NewOtpRequest(phone_number="+33612345678"))
    assert api.verify_otp(otp.otp_id, otpsim.latest_pin(otp_id=otp.otp_id)).status == "VERIFIED"


TEST_NUMBERS = {"network": {"fixed_pins": [{"match": "+33600000001", "pin": "123456"}]}}


@pytest.mark.otpsim(scenario=TEST_NUMBERS)
def test_a_test_number_always_gets_the_same_code(otpsim):
    api = otp_api_from_settings(otpsim.url, api_key=APP_SETTINGS["sms_api_key"])
    otp = api.new_otp(NewOtpRequest(phone_number="+33600000001"))
    assert api.verify_otp(otp.otp_id, "123456").status == "VERIFIED"
