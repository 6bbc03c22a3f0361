"""What the server's per-request path leaves behind, pinned while it is made cheaper:
the SMS log line (read from the message itself, not its JSON), the charset check, the
journal entry built from what the request held."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from support import expect_error

from otpsim.config import Settings

KEY = {"X-API-KEY": "paths"}


def _sms_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "otpsim.sms"]


@pytest.mark.parametrize("show", [False, True])
async def test_the_sms_line_and_its_fields(
    make_client: Any, caplog: pytest.LogCaptureFixture, show: bool
) -> None:
    client = await make_client(Settings(log_pins=show))
    caplog.set_level(logging.INFO, logger="otpsim.sms")
    response = await client.post("/otp", json={"phoneNumber": "+33612345678"}, headers=KEY)
    assert response.status == 201
    otp = await response.json()
    message = await (await client.get(f"/_sim/messages/latest?otpId={otp['otpId']}")).json()
    [record] = _sms_records(caplog)
    pin = message["pin"]
    text = message["text"] if show else message["text"].replace(pin, "******")
    assert record.getMessage() == f"SMS to +33612345678 from {message['from']}: {text}"
    assert list(record.fields.items()) == list({  # type: ignore[attr-defined]
        "message_id": message["id"], "otp_id": otp["otpId"], "account": "paths",
        "phone": "+33612345678", "text": text, "parts": message["parts"],
        "encoding": message["encoding"],
    }.items())  # in this order: the JSON line's keys  # fmt: skip
    assert (pin in record.getMessage()) is show


@pytest.mark.parametrize(
    "ctype",
    [
        "application/json;charset=bogus",
        'application/json ; CHARSET="bogus"',
        "text/plain;charset=bogus",
    ],
)
async def test_a_charset_however_written_is_checked(make_client: Any, ctype: str) -> None:
    client = await make_client()
    headers = {**KEY, "Content-Type": ctype}
    response = await client.post("/otp", data=b'{"phoneNumber": "+33612345678"}', headers=headers)
    err = await expect_error(response, 400, "invalid_body", 1012)
    assert "bogus" in err["message"]


@pytest.mark.parametrize(
    "ctype", ["application/json", "text/plain", "application/json; charset=UTF-8"]
)
async def test_a_known_or_no_charset_is_read(make_client: Any, ctype: str) -> None:
    client = await make_client()
    headers = {**KEY, "Content-Type": ctype}
    response = await client.post("/otp", data=b'{"phoneNumber": "+33612345678"}', headers=headers)
    assert response.status == 201, await response.text()
