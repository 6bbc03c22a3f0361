"""otpsim driven by the provider's official Python SDK (``smscx-client`` 0.1.13).

Every OTP method, ``/oauth/token``, the balance and number validation, with every answer
deserialized by the SDK's models (client-side validations on: a ``countryIso`` of three
characters or an uppercase id would raise ApiValueError); then every provider-API row of
docs/errors.md reached through the SDK, asserted as the exception class the SDK raises
(its base ApiException, with status and body, where it has no class).

Requests the SDK's own models refuse to send (a ``ttl`` of 10, a missing field) go
through the SDK's low-level ``ApiClient.call_api``: the same transport, authentication
and error mapping as its generated methods.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEY, CLIENT_ID, CLIENT_SECRET, FIXED_NUMBER, POOR_KEY, sdk_client
from smscx_client import exceptions as sdk_errors
from smscx_client.api import account_api, numbers_api, oauth_api, otp_api
from smscx_client.model.account_balance import AccountBalance
from smscx_client.model.data_otp import DataOtp
from smscx_client.model.error import Error
from smscx_client.model.new_otp_request import NewOtpRequest
from smscx_client.model.new_otp_response import NewOtpResponse
from support import call

from otpsim.errors import E, ErrorSpec

FR = "+33612345678"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def otp_api_for(base: str, **auth: Any) -> otp_api.OtpApi:
    return otp_api.OtpApi(sdk_client(base, **auth))


def pin_of(base: str, otp_id: str) -> str:
    status, body = call("GET", f"{base}/_sim/messages/latest?otpId={otp_id}")
    assert status == 200, body
    return str(body["pin"])


def new_otp(base: str, **fields: Any) -> Any:
    return otp_api_for(base).new_otp(NewOtpRequest(phone_number=FR, **fields))


# -- every method, every answer through the SDK's models ------------------------------------


def test_new_get_verify_cancel_through_the_sdk(base: str) -> None:
    api = otp_api_for(base)
    track = str(uuid.uuid4())
    created = api.new_otp(
        NewOtpRequest(
            phone_number=FR,
            _from="Acme",
            template="Acme code {{pin}}",
            track_id=track,
            ttl=120,
            max_attempts=4,
            pin_type="numbers",
            pin_length=5,
            otp_callback_url="http://127.0.0.1:9/hook",
        )
    )
    assert isinstance(created, NewOtpResponse)
    assert (created.country_iso, created.status, created.track_id) == ("FR", "PENDING", track)
    assert (created.ttl, created.max_attempts, created.attempts, created.parts) == (120, 4, 0, 1)
    read = api.get_otp_status(created.otp_id)
    assert isinstance(read, DataOtp)
    assert read.otp_id == created.otp_id
    assert read.date_expires > read.date_created
    assert api.verify_otp(created.otp_id, pin_of(base, created.otp_id)).status == "VERIFIED"
    assert api.get_otp_status(created.otp_id).status == "VERIFIED"
    other = new_otp(base)
    assert api.cancel_otp(other.otp_id).info.id == other.otp_id
    assert api.get_otp_status(other.otp_id).status == "CANCELLED"


def test_an_uppercase_track_id_from_another_client_stays_readable_by_the_sdk(base: str) -> None:
    track = str(uuid.uuid4()).upper()
    status, body = call(
        "POST", f"{base}/otp", {"phoneNumber": FR, "trackId": track}, {"X-API-KEY": API_KEY}
    )
    assert status == 201, body
    assert body["trackId"] == track.lower()
    assert otp_api_for(base).get_otp_status(body["otpId"]).track_id == track.lower()


def test_oauth_token_then_bearer_calls(base: str) -> None:
    auth = oauth_api.OauthApi(sdk_client(base, username=CLIENT_ID, password=CLIENT_SECRET))
    token = auth.get_access_token(scope="otp account numbers")
    assert token.token_type == "Bearer"
    assert token.scope == "otp numbers account"
    assert token.expires_in > 0
    bearer = {"access_token": token.access_token}
    created = otp_api_for(base, **bearer).new_otp(NewOtpRequest(phone_number=FR))
    assert created.status == "PENDING"
    balance = account_api.AccountApi(sdk_client(base, **bearer)).get_account_balance()
    assert balance.billing == "postpaid"
    assert numbers_api.NumbersApi(sdk_client(base, **bearer)).validate_number(FR).data


def test_balance_as_the_sdk_reads_it(base: str) -> None:
    poor = {"api_key": POOR_KEY}
    account = account_api.AccountApi(sdk_client(base, **poor))
    before = account.get_account_balance()
    assert isinstance(before, AccountBalance)
    assert (before.balance, before.currency, before.billing) == (0.07, "eur", "prepaid")
    otp_api_for(base, **poor).new_otp(NewOtpRequest(phone_number=FR))
    assert account.get_account_balance().balance == pytest.approx(0.02)
    # The default account is unlimited: billed after the fact, minus what it spent.
    unlimited = account_api.AccountApi(sdk_client(base)).get_account_balance()
    assert (unlimited.balance, unlimited.billing) == (0.0, "postpaid")


@pytest.mark.parametrize("form", ["+33612424105", "33612424105", "%2B33612424105"])
def test_validate_number_in_every_form_the_provider_accepts(base: str, form: str) -> None:
    numbers = numbers_api.NumbersApi(sdk_client(base))
    data = numbers.validate_number(form).data
    assert (data.phone_number, data.country_iso) == ("+33612424105", "FR")
    assert data.timezone == "Europe/Paris"
    assert isinstance(data.network_operator, str)


def test_the_sdk_models_would_refuse_what_otpsim_must_never_send(base: str) -> None:
    """The proof that validations are on: the old answers crash the SDK's models."""
    created = new_otp(base)
    status, raw = call("GET", f"{base}/otp/{created.otp_id}", headers={"X-API-KEY": API_KEY})
    assert status == 200
    client = sdk_client(base)

    class Answer:  # what the SDK's deserializer reads of an HTTP answer
        def __init__(self, body: dict[str, Any]) -> None:
            self.data = json.dumps(body)

    assert client.deserialize(Answer(raw), (DataOtp,), True).country_iso == "FR"
    for bad in ({"countryIso": "001"}, {"trackId": str(uuid.uuid4()).upper()}):
        with pytest.raises(sdk_errors.ApiValueError):
            client.deserialize(Answer({**raw, **bad}), (DataOtp,), True)


# -- every provider-API error row, as the SDK raises it -----------------------------------

Trigger = Callable[[str], Any]


def raw(
    method: str,
    path: str,
    body: Any = None,
    *,
    auth: dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
) -> Trigger:
    """A request through the SDK's transport with a body its models would not build."""

    def send(base: str) -> Any:
        client = sdk_client(base, **(auth or {}))
        headers = {"Accept": "application/json"}
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            headers["Content-Type"] = "application/json"
        return client.call_api(
            path,
            method,
            header_params=headers,
            body=body,
            post_params=list(form.items()) if form is not None else None,
            response_type=None,
            auth_settings=["BasicAuth"] if form is not None else ["ApiKeyAuth", "BearerAuth"],
            _return_http_data_only=True,
        )

    return send


def create(**body: Any) -> Trigger:
    return raw("POST", "/otp", {"phoneNumber": FR, **body})


def on_otp(*steps: str, max_attempts: int = 3, then: str) -> Trigger:
    """Create an OTP, take it through ``steps`` (verify, wrong, cancel, expire), then call
    ``then`` (verify, nopin, cancel) on it through the SDK's generated methods."""

    def send(base: str) -> Any:
        api = otp_api_for(base)
        otp_id = api.new_otp(NewOtpRequest(phone_number=FR, max_attempts=max_attempts)).otp_id
        pin = pin_of(base, otp_id)
        for step in steps:
            try:
                if step == "verify":
                    api.verify_otp(otp_id, pin)
                elif step == "wrong":
                    api.verify_otp(otp_id, "000000" if pin != "000000" else "111111")
                elif step == "cancel":
                    api.cancel_otp(otp_id)
                elif step == "expire":
                    call("POST", f"{base}/_sim/clock", {"advance": 301})
            except sdk_errors.ApiException:
                pass  # a step may itself be refused (the last wrong PIN): not the point
        if then == "verify":
            return api.verify_otp(otp_id, pin)
        if then == "wrong":
            return api.verify_otp(otp_id, "000000" if pin != "000000" else "111111")
        if then == "nopin":
            return raw("POST", f"/otp/{otp_id}", {})(base)
        return api.cancel_otp(otp_id)

    return send


def token(**form: str) -> Trigger:
    return raw("POST", "/oauth/token", auth={"username": CLIENT_ID, "password": CLIENT_SECRET},
               form=form)  # fmt: skip


def with_token(scope: str, trigger_path: str) -> Trigger:
    def send(base: str) -> Any:
        auth = oauth_api.OauthApi(sdk_client(base, username=CLIENT_ID, password=CLIENT_SECRET))
        value = auth.get_access_token(scope=scope).access_token
        return otp_api_for(base, access_token=value).get_otp_status(trigger_path)

    return send


def faulted(endpoint: str, status: int) -> Trigger:
    """A scenario rule answering ``status`` on ``endpoint`` (docs/scenarios.md), then
    that call through the SDK; the scenario is cleared whatever happens."""

    def send(base: str) -> Any:
        rule = {"match": "*", "on": endpoint, "error": status}
        put, body = call("PUT", f"{base}/_sim/scenario", {"network": {"rules": [rule]}})
        assert put == 200, body
        try:
            api = otp_api_for(base)
            otp_id = api.new_otp(NewOtpRequest(phone_number=FR)).otp_id
            if endpoint == "verify":
                return api.verify_otp(otp_id, "123456")
            return api.get_otp_status(otp_id)
        finally:
            call("DELETE", f"{base}/_sim/scenario")

    return send


UNKNOWN_ID = "0b5b4f3e-0000-4000-8000-000000000000"
X = sdk_errors

# (status, type, code) of a docs/errors.md row -> how to reach it, and what the SDK raises.
CASES: dict[tuple[int, str, int], tuple[Trigger, type[Exception]]] = {
    (400, "invalid_param", 2001): (raw("POST", "/otp", {}), X.InvalidRequestException),
    (400, "invalid_param", 2002): (create(phoneNumber="0612345678"), X.InvalidRequestException),
    (400, "invalid_param", 2003): (
        create(phoneNumber="0612345678", countryIso="ZZ"), X.InvalidRequestException),
    (400, "invalid_param", 2004): (create(**{"from": " "}), X.InvalidRequestException),
    (400, "invalid_param", 2005): (create(**{"from": "ab"}), X.InvalidRequestException),
    (400, "invalid_param", 2006): (create(template="no pin"), X.InvalidRequestException),
    (400, "invalid_param", 2007): (create(ttl="soon"), X.InvalidRequestException),
    (400, "invalid_param", 2008): (create(ttl=10), X.InvalidRequestException),
    (400, "invalid_param", 2009): (create(ttl=5000), X.InvalidRequestException),
    (400, "invalid_param", 2010): (create(maxAttempts="x"), X.InvalidRequestException),
    (400, "invalid_param", 2011): (create(maxAttempts=0), X.InvalidRequestException),
    (400, "invalid_param", 2012): (create(maxAttempts=11), X.InvalidRequestException),
    (400, "invalid_param", 2013): (create(pinType=" "), X.InvalidRequestException),
    (400, "invalid_param", 2014): (create(pinType="emoji"), X.InvalidRequestException),
    (400, "invalid_param", 2015): (create(pinLength="x"), X.InvalidRequestException),
    (400, "invalid_param", 2016): (create(pinLength=2), X.InvalidRequestException),
    (400, "invalid_param", 2017): (create(pinLength=11), X.InvalidRequestException),
    (400, "invalid_param", 2018): (
        create(trackId="bf325375-e030-fccb-a009-17317c574773"), X.InvalidRequestException),
    (400, "invalid_param", 2019): (
        create(otpCallbackUrl="ftp://127.0.0.1/x"), X.InvalidRequestException),
    (400, "invalid_param", 2020): (create(phoneNumber="+3361"), X.InvalidRequestException),
    (400, "invalid_param", 1035): (create(phoneNumber=FIXED_NUMBER), X.InvalidRequestException),
    (403, "no_coverage", 1119): (
        lambda base: otp_api_for(base).new_otp(NewOtpRequest(phone_number="+870773111632")),
        X.NoCoverageException),
    (400, "insufficient_credit", 1113): (
        lambda base: [otp_api_for(base, api_key=POOR_KEY).new_otp(NewOtpRequest(
            phone_number=FR)) for _ in range(2)],
        X.InsufficientBalanceException),
    (400, "invalid_param", 1207): (
        lambda base: numbers_api.NumbersApi(sdk_client(base)).validate_number("+3361"),
        X.InvalidPhoneNumberException),
    (404, "not_found", 2021): (
        lambda base: otp_api_for(base).get_otp_status(UNKNOWN_ID), X.ResourceNotFoundException),
    (400, "invalid_param", 2022): (on_otp(then="nopin"), X.InvalidRequestException),
    (400, "otp_verified", 2023): (on_otp("verify", then="verify"), X.OtpAlreadyVerifiedException),
    (400, "otp_cancelled", 2024): (on_otp("cancel", then="verify"), X.OtpCancelledException),
    (400, "otp_expired", 2025): (
        on_otp("expire", "verify", then="verify"), X.OtpExpiredException),
    (400, "otp_failed", 2026): (
        on_otp("wrong", max_attempts=1, then="verify"), X.OtpFailedException),
    (400, "otp_failed", 2027): (on_otp(max_attempts=1, then="wrong"), X.OtpFailedException),
    (400, "otp_expired", 2028): (on_otp("expire", then="verify"), X.OtpExpiredException),
    (400, "invalid_pin", 2029): (on_otp(then="wrong"), X.InvalidPinException),
    (403, "access_denied", 2030): (on_otp("cancel", then="cancel"), X.OtpCancelledException),
    (403, "access_denied", 2031): (
        on_otp("verify", then="cancel"), X.OtpActionNotAllowedException),
    (400, "invalid_request", 1600): (token(), X.InvalidRequestException),
    (400, "invalid_scope", 1600): (
        token(grant_type="client_credentials", scope="telepathy"), X.InvalidScopeException),
    (400, "unsupported_grant_type", 1600): (
        token(grant_type="password"), X.InvalidRequestException),
    (401, "invalid_client", 1600): (
        lambda base: oauth_api.OauthApi(
            sdk_client(base, username=CLIENT_ID, password="wrong")).get_access_token(),
        X.InvalidCredentialsException),
    (401, "invalid_api_key", 1001): (
        lambda base: otp_api_for(base, api_key=None).get_otp_status(UNKNOWN_ID),
        X.InvalidCredentialsException),
    (401, "invalid_api_key", 1002): (
        lambda base: otp_api_for(base, api_key="not-mine").get_otp_status(UNKNOWN_ID),
        X.InvalidCredentialsException),
    (401, "invalid_client", 1003): (
        lambda base: otp_api_for(base, access_token="made-up").get_otp_status(UNKNOWN_ID),
        X.InvalidCredentialsException),
    (403, "insufficient_scope", 1004): (with_token("sms", UNKNOWN_ID),
                                        X.InsufficientScopeException),
    (404, "not_found", 1010): (raw("GET", "/sms"), X.ResourceNotFoundException),
    (405, "invalid_method", 1011): (raw("PUT", "/otp", {}), X.ApiMethodNotAllowedException),
    (400, "invalid_body", 1012): (raw("POST", "/otp", [FR]), X.InvalidRequestException),
    (413, "invalid_body", 1013): (create(template="{{pin}}" + "x" * 20_000), X.ApiException),
    (429, "rate_limit", 1014): (create(phoneNumber="+15005550007"), X.RateLimitExcedeedException),
    (500, "server_error", 1015): (create(phoneNumber="+15005550005"), X.ServerErrorException),
    (503, "server_error", 1016): (create(phoneNumber="+15005550006"), X.ServerErrorException),
    (400, "invalid_request", 1038): (faulted("verify", 400), X.InvalidRequestException),
    (403, "access_denied", 1039): (faulted("status", 403), X.AccessDeniedException),
}  # fmt: skip


def documented_provider_rows() -> set[tuple[int, str, int]]:
    """Every (status, type, code) row of docs/errors.md outside the control API's table."""
    text = (DOCS / "errors.md").read_text(encoding="utf-8")
    provider_part = text.split("## Control API", 1)[0]
    return {
        (int(m[1]), m[2], int(m[3]))
        for m in re.finditer(r"^\| (\d{3}) \| `([a-z_]+)` \| (\d+) \|", provider_part, re.M)
    }


def test_every_documented_provider_error_has_a_case() -> None:
    assert set(CASES) == documented_provider_rows()
    provider = {(s.status, s.type, s.code) for s in vars(E).values()
                if isinstance(s, ErrorSpec) and s.surface == "provider"}  # fmt: skip
    assert provider == set(CASES)


@pytest.mark.parametrize("row", sorted(CASES), ids=lambda row: f"{row[0]}-{row[1]}-{row[2]}")
def test_each_error_is_the_exception_the_sdk_documents(
    base: str, row: tuple[int, str, int]
) -> None:
    trigger, expected = CASES[row]
    with pytest.raises(sdk_errors.ApiException) as info:
        trigger(base)
    assert type(info.value) is expected, info.value
    status, type_, code = row
    body = json.loads(info.value.body)
    assert info.value.status == status
    assert (body["error"]["type"], body["error"]["code"]) == (type_, code), body
    # The SDK's Error model (its type enum included) accepts it.
    error = Error._from_api_data(**body["error"], _spec_property_naming=True)
    assert error.code == code
