"""Transport: headers on every response, rate limiting, and bad bodies in the error shape."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from support import FR, KEY, START, create, expect_error, sim_of

from otpsim.config import Settings

BODY = {"phoneNumber": FR}


async def test_every_api_response_has_request_id_response_time_and_rate_headers(
    client: Any,
) -> None:
    ids = set()
    for resp in (
        await client.post("/otp", json=BODY, headers=KEY),
        await client.post("/otp", json={}, headers=KEY),  # 400
        await client.post("/otp", json=BODY),  # 401
        await client.get("/otp/0b5b4f3e-0000-4000-8000-000000000000", headers=KEY),  # 404
    ):
        assert resp.headers["X-Response-Time"].endswith("ms")
        assert int(resp.headers["X-Rate-Limit-Limit"]) > 0
        assert int(resp.headers["X-Rate-Limit-Remaining"]) >= 0
        ids.add(resp.headers["X-Request-Id"])
    assert len(ids) == 4  # unique per request


async def test_control_api_and_page_also_carry_request_ids(client: Any) -> None:
    for path in ("/_sim/health", "/", "/nowhere"):
        resp = await client.get(path)
        assert resp.headers["X-Request-Id"]
        assert resp.headers["X-Response-Time"]


async def test_rate_limit_is_off_by_default(client: Any) -> None:
    for _ in range(30):
        resp = await client.post("/otp", json=BODY, headers=KEY)
        assert resp.status == 201


async def test_rate_limit_per_credential_on_the_simulator_clock(make_client: Any) -> None:
    client = await make_client(Settings(rate_limit=3, rate_limit_window=60))
    remaining = []
    for _ in range(3):
        resp = await client.post("/otp", json=BODY, headers=KEY)
        assert resp.status == 201
        assert resp.headers["X-Rate-Limit-Limit"] == "3"
        remaining.append(resp.headers["X-Rate-Limit-Remaining"])
    assert remaining == ["2", "1", "0"]
    resp = await client.get("/otp/0b5b4f3e-0000-4000-8000-000000000000", headers=KEY)
    await expect_error(resp, 429, "rate_limit", 1014)
    window_start = START - START % 60
    assert int(resp.headers["X-Rate-Limit-Reset"]) == window_start + 60
    assert resp.headers["X-Rate-Limit-Remaining"] == "0"
    # Another credential has its own budget.
    other = await client.post("/otp", json=BODY, headers={"X-API-KEY": "other"})
    assert other.status == 201
    # The next window opens when the simulator clock gets there.
    sim_of(client).move_clock(to=window_start + 60)
    assert (await client.post("/otp", json=BODY, headers=KEY)).status == 201


async def test_rate_limited_request_changes_nothing(make_client: Any) -> None:
    client = await make_client(Settings(rate_limit=1))
    await create(client)
    resp = await client.post("/otp", json=BODY, headers=KEY)
    assert resp.status == 429
    assert len(sim_of(client).list_otps()) == 1


@pytest.mark.parametrize(
    ("raw", "content_type", "says"),
    [
        (b"not json", "application/json", "not valid JSON (line 1, column 1: Expecting value)"),
        (b'{"phoneNumber": "+1",\n  "ttl": }', "application/json", "(line 2, column 10"),
        (b"[1, 2]", "application/json", "must be a JSON object, not list"),
        (b'"text"', "application/json", "must be a JSON object, not str"),
        (b"\xff\xfe{}", "application/json", "not valid UTF-8"),
        (b"phoneNumber=%2B33612345678", "application/x-www-form-urlencoded", "not valid JSON"),
        (b"[" * 100_00 + b"]" * 100_00, "application/json", "nested too deeply"),
        # Lenient parsers take these; a provider's would not.
        (b'{"phoneNumber": NaN}', "application/json", "not valid JSON"),
        (b'{"phoneNumber": "\\ud800"}', "application/json", "not valid JSON"),
    ],
)
async def test_bad_bodies_are_400_in_the_error_shape(
    client: Any, raw: bytes, content_type: str, says: str
) -> None:
    resp = await client.post("/otp", data=raw, headers={**KEY, "Content-Type": content_type})
    err = await expect_error(resp, 400, "invalid_body", 1012)
    assert says in err["message"]
    assert err["message"].startswith("Request body ")
    assert sim_of(client).list_otps() == []


async def test_json_without_content_type_is_accepted(client: Any) -> None:
    resp = await client.post("/otp", data=b'{"phoneNumber": "+33612345678"}', headers=KEY)
    assert resp.status == 201


async def test_body_over_the_limit_is_413(make_client: Any) -> None:
    client = await make_client(Settings(max_body_bytes=1024))
    resp = await client.post("/otp", json={**BODY, "template": "x" * 2000}, headers=KEY)
    err = await expect_error(resp, 413, "invalid_body", 1013)
    assert "1024" in err["message"]
    assert (await client.post("/otp", json=BODY, headers=KEY)).status == 201  # still serving


async def test_unknown_path_is_404_json(client: Any) -> None:
    err = await expect_error(await client.get("/sms", headers=KEY), 404, "not_found", 1010)
    assert "/sms" in err["message"]


async def test_wrong_method_is_405_json_with_allow(client: Any) -> None:
    resp = await client.put("/otp", json=BODY, headers=KEY)
    await expect_error(resp, 405, "invalid_method", 1011)
    assert "POST" in resp.headers["Allow"]
    resp = await client.patch("/otp/0b5b4f3e-0000-4000-8000-000000000000", headers=KEY)
    await expect_error(resp, 405, "invalid_method", 1011)


async def test_unexpected_failure_is_a_500_in_the_error_shape(client: Any) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    sim_of(client).create_otp = broken  # type: ignore[method-assign]
    resp = await client.post("/otp", json=BODY, headers=KEY)
    err = await expect_error(resp, 500, "server_error", 1015)
    assert "boom" not in err["message"]  # internals stay in the log


async def test_bodies_in_pieces_and_chunked_are_read_whole(client: Any) -> None:
    body = json.dumps({"phoneNumber": FR, "template": "Code {{pin}} " + "x" * 1500}).encode()

    async def pieces() -> AsyncIterator[bytes]:  # chunked transfer encoding
        for start in range(0, len(body), 300):
            yield body[start : start + 300]
            await asyncio.sleep(0.01)

    resp = await client.post(
        "/otp", data=pieces(), headers={**KEY, "Content-Type": "application/json"}
    )
    assert resp.status == 201, await resp.text()

    # Headers and half of a Content-Length body, the rest a moment later.
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    head = (
        f"POST /otp HTTP/1.1\r\nHost: x\r\nX-API-KEY: {KEY['X-API-KEY']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body[:1000])
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(body[1000:])
    status_line = await reader.readline()
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 201"), status_line
    assert len(sim_of(client).list_otps()) == 2


def test_each_json_answer_has_headers_of_its_own() -> None:
    """Answers start from one shared set of headers: what one answer adds (an error's
    Retry-After, the middleware's ids) is never in another's."""
    from otpsim.server.http import json_response

    first = json_response({"a": 1})
    first.headers["Retry-After"] = "5"
    first.headers["Content-Type"] = "text/plain"
    second = json_response({"a": 2}, status=201)
    assert dict(second.headers) == {"Content-Type": "application/json; charset=utf-8"}
    assert (second.status, second.body) == (201, b'{"a":2}')
