"""Hostile input against the store: bytes that are not UTF-8 in headers, query strings
and paths never reach the store or a JSON answer, and never wedge the simulator."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support import FR, KEY, raw_http

from otpsim.config import Settings

GOOD_BODY = json.dumps({"phoneNumber": FR}).encode()


async def raw(client: TestClient[Any, Any], head: bytes, body: bytes = b"") -> tuple[int, Any]:
    """Send one raw request (request line and header lines, without the blank line) to the
    in-process server; (status, JSON body). The socket is blocking: off the loop."""
    data = (
        head + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    host, port = "127.0.0.1", client.server.port
    assert port is not None
    status, answer = await asyncio.get_running_loop().run_in_executor(
        None, lambda: raw_http(host, port, data, timeout=5)
    )
    payload = answer.partition(b"\r\n\r\n")[2]
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload


def error_of(status: int, body: Any) -> tuple[int, str, int]:
    assert isinstance(body, dict), body
    return status, body["error"]["type"], body["error"]["code"]


@pytest.fixture(params=["memory", "sqlite"])
async def any_client(
    request: pytest.FixtureRequest, make_client: Any, tmp_path: Path
) -> TestClient[Any, Any]:
    db = str(tmp_path / "otpsim.db") if request.param == "sqlite" else None
    return await make_client(Settings(db=db))


async def still_works(client: TestClient[Any, Any]) -> None:
    """A normal client is served, and the control API lists what is stored."""
    resp = await client.post("/otp", json={"phoneNumber": FR}, headers=KEY)
    assert resp.status == 201, await resp.text()
    for path in ("/_sim/messages", "/_sim/otps"):
        resp = await client.get(path)
        assert resp.status == 200, await resp.text()


async def test_an_undecodable_api_key_is_refused_and_everyone_else_is_served(
    any_client: TestClient[Any, Any],
) -> None:
    status, body = await raw(any_client, b"POST /otp HTTP/1.1\r\nX-API-KEY: k\xff", GOOD_BODY)
    assert error_of(status, body) == (401, "invalid_api_key", 1002)
    assert "UTF-8" in body["error"]["message"]
    await still_works(any_client)
    resp = await any_client.get("/_sim/otps")
    assert [o["account"] for o in (await resp.json())["otps"]] == ["test-key"]


@pytest.mark.parametrize(
    ("path", "header", "code"),
    [
        (b"POST /otp", b"Authorization: Bearer t\xff", 1003),
        (b"POST /oauth/token", b"Authorization: Bearer t\xff", 1600),
        (b"POST /oauth/token", b"Authorization: Basic \xff\xfe", 1600),
        (
            b"POST /oauth/token",
            b"Authorization: Basic " + base64.b64encode(b"client\xff:secret"),
            1600,
        ),
    ],
    ids=["bearer", "bearer-for-a-token", "basic-raw", "basic-decoded"],
)
async def test_undecodable_bearer_or_basic_credentials_are_an_invalid_client(
    any_client: TestClient[Any, Any], path: bytes, header: bytes, code: int
) -> None:
    status, body = await raw(any_client, path + b" HTTP/1.1\r\n" + header, GOOD_BODY)
    assert error_of(status, body) == (401, "invalid_client", code)
    assert "UTF-8" in body["error"]["message"]
    await still_works(any_client)


async def test_an_undecodable_origin_is_a_clear_400(any_client: TestClient[Any, Any]) -> None:
    for head in (b"POST /_sim/reset HTTP/1.1", b"GET /_sim/ws HTTP/1.1"):
        status, body = await raw(any_client, head + b"\r\nOrigin: http://\xff")
        assert error_of(status, body) == (400, "invalid_param", 1020)
        assert "Origin" in body["error"]["message"]
    await still_works(any_client)


async def test_an_undecodable_admin_cookie_is_a_clear_400(make_client: Any) -> None:
    client = await make_client(Settings(admin_token="s3cret"))
    status, body = await raw(client, b"GET /_sim/otps HTTP/1.1\r\nCookie: otpsim_admin=\xff")
    assert error_of(status, body) == (400, "invalid_param", 1020)
    resp = await client.get("/_sim/otps", headers={"Authorization": "Bearer s3cret"})
    assert resp.status == 200


@pytest.mark.parametrize(
    "head",
    [
        b"GET /_sim/messages?account=%FF",
        b"GET /_sim/messages?account=%ED%A0%80&otpId=%ED%B0%80",
        b"GET /_sim/otps?account=%C3&phoneNumber=%FF",
        b"GET /_sim/messages/latest?otpId=%ED%A0%80",
        b"GET /_sim/callbacks?otpId=%FF&account=%ED%A0%80",
        b"GET /_sim/otps/%ED%A0%80",
        b"GET /_sim/callbacks/%ED%A0%80",
        b"POST /_sim/callbacks/%FF%ED%A0%80/resend",
        b"DELETE /_sim/messages?account=%ED%A0%80",
        b"POST /_sim/reset?account=%ED%A0%80",
        b"GET /otp/%ED%A0%80",
        b"POST /otp/%FF",
    ],
)
async def test_undecodable_query_strings_and_paths_get_json_answers(
    any_client: TestClient[Any, Any], head: bytes
) -> None:
    status, body = await raw(any_client, head + b" HTTP/1.1\r\nX-API-KEY: k", b'{"pin": "1"}')
    assert status < 500, body
    assert isinstance(body, dict), body  # JSON, in the provider's shape
    await still_works(any_client)
