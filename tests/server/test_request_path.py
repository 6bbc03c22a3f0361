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


def test_request_state_is_what_request_keys_set() -> None:
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from otpsim.server.http import request_state

    key = web.RequestKey("k", str)
    request = make_mocked_request("POST", "/otp")
    request[key] = "set"
    state = request_state(request)
    assert state.get(key) == "set"
    assert state.get(web.RequestKey("unset", str)) is None
    request[key] = "again"
    assert state[key] == "again"


async def test_an_entry_read_after_its_request_is_gone_is_whole(make_client: Any) -> None:
    import gc

    client = await make_client(Settings(rate_limit=100))
    body = {"phoneNumber": "+33612345678", "client_secret": "hunter2", "x": "y"}
    created = await client.post("/otp", json=body, headers=KEY)
    otp = await created.json()
    message = await (await client.get(f"/_sim/messages/latest?otpId={otp['otpId']}")).json()
    verified = await client.post(f"/otp/{otp['otpId']}", json={"pin": message["pin"]}, headers=KEY)
    assert verified.status == 200
    refused = await client.post("/otp", json={"phoneNumber": "+33612345678"})  # no key
    assert refused.status == 401
    del created, verified
    gc.collect()
    entries = (await (await client.get("/_sim/requests")).json())["requests"]
    wrong_key, verify, create = entries
    assert create["body"] == {"phoneNumber": "+33612345678", "client_secret": "****", "x": "y"}
    assert (create["otpId"], create["phoneNumber"], create["account"]) == (
        otp["otpId"], "+33612345678", "paths",
    )  # fmt: skip
    assert verify["body"] == {"pin": "****"}
    assert (verify["otpId"], verify["phoneNumber"], verify["status"]) == (
        otp["otpId"], "+33612345678", 200,
    )  # fmt: skip
    assert wrong_key["status"] == 401
    assert wrong_key["body"] == {"phoneNumber": "+33612345678"}  # never read: kept as sent
    assert wrong_key["error"]["type"] == "invalid_api_key"
    assert wrong_key["requestId"] == refused.headers["X-Request-Id"]
    shown = (await (await client.get("/_sim/requests?pins=show")).json())["requests"]
    assert shown[1]["body"] == {"pin": message["pin"]}
    assert "hunter2" not in str(shown)


async def test_every_answer_carries_its_id_time_and_rate_headers(make_client: Any) -> None:
    client = await make_client(Settings(rate_limit=1))
    ok = await client.post("/otp", json={"phoneNumber": "+33612345678"}, headers=KEY)
    limited = await client.post("/otp", json={"phoneNumber": "+33612345678"}, headers=KEY)
    missing = await client.get("/nowhere", headers=KEY)
    assert (ok.status, limited.status, missing.status) == (201, 429, 404)
    for response in (ok, limited, missing):
        assert len(response.headers["X-Request-Id"]) == 32
        assert response.headers["X-Response-Time"].endswith("ms")
    for response in (ok, limited):
        assert "X-Rate-Limit-Limit" in response.headers, response.headers
    assert limited.headers["X-Rate-Limit-Remaining"] == "0"
    ids = [e["requestId"] for e in (await (await client.get("/_sim/requests")).json())["requests"]]
    assert ids == [r.headers["X-Request-Id"] for r in (missing, limited, ok)]


def _head(raw: bytes) -> list[str]:
    """An answer's status line and headers in order, the values that change from run to
    run (date, request id, time taken) replaced by their shape."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    shaped = [lines[0]]
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        if name == "Date":
            value = "<date>" if value.endswith(" GMT") else value
        elif name == "X-Request-Id":
            value = "<id>" if len(value) == 32 else value
        elif name == "X-Response-Time":
            value = "<ms>" if value.endswith("ms") and float(value[:-2]) >= 0 else value
        shaped.append(f"{name}: {value}")
    return [*shaped, f"<body {len(body)} bytes>"]


async def test_the_answers_head_byte_for_byte(make_client: Any) -> None:
    """Status line, header names, their order and values, as aiohttp and the middleware
    write them (a 201, a HEAD's 404, a 429, an HTTP/1.0 answer): kept byte for byte
    while the answer is built with fewer steps."""
    import asyncio

    from aiohttp.http import SERVER_SOFTWARE
    from support import raw_http

    client = await make_client(Settings(rate_limit=2))
    body = b'{"phoneNumber": "+33612345678"}'
    post = (
        b"POST /otp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: paths\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    head = b"HEAD /otp/nope HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: paths\r\n\r\n"
    old = b"GET /_sim/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    answers = [
        _head((await asyncio.to_thread(raw_http, "127.0.0.1", client.server.port, raw))[1])
        for raw in (post, head, post, old)
    ]
    for lines in answers:
        for n, line in enumerate(lines):
            if line.startswith(("X-Rate-Limit-Remaining: ", "X-Rate-Limit-Reset: ")):
                lines[n] = line.partition(": ")[0] + ": <n>"
    ids = ["X-Request-Id: <id>", "X-Response-Time: <ms>"]
    rate = ["X-Rate-Limit-Limit: 2", "X-Rate-Limit-Remaining: <n>"]
    tail = ["Date: <date>", f"Server: {SERVER_SOFTWARE}"]
    json_type = "Content-Type: application/json; charset=utf-8"
    created, missing, limited, health = answers
    assert created == [
        "HTTP/1.1 201 Created", json_type, *ids, *rate, "Content-Length: 294", *tail,
        "<body 294 bytes>",
    ]  # fmt: skip
    assert missing[0] == "HTTP/1.1 404 Not Found"
    assert missing[1:5] == [json_type, *ids, rate[0]]
    assert missing[-4:] == [missing[-4], *tail, "<body 0 bytes>"]
    assert missing[-4].startswith("Content-Length: ")
    assert limited == [
        "HTTP/1.1 429 Too Many Requests", json_type, *ids, *rate, "X-Rate-Limit-Reset: <n>",
        "Content-Length: 186", *tail, "<body 186 bytes>",
    ]  # fmt: skip
    assert health == [
        "HTTP/1.0 200 OK", json_type, *ids, "Content-Length: 33", *tail, "<body 33 bytes>"
    ]  # fmt: skip
