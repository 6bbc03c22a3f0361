"""The request journal under hostile input: what a client sends is kept bounded, never
awaited, never fatal to the store, and never a secret."""

from __future__ import annotations

import asyncio
import base64
import gc
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support import FR, KEY, create, expect_error, pin_of, raw_http

from otpsim.domain.journal import RequestQuery
from otpsim.server.keys import SIM
from otpsim.store.sqlite import SqliteStore


async def journal(client: Any, **params: Any) -> list[dict[str, Any]]:
    resp = await client.get("/_sim/requests", params=params)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["requests"]  # type: ignore[no-any-return]


async def test_bytes_that_are_not_utf8_in_a_path_cost_no_one_their_answer(
    make_client: Any, tmp_path: Path
) -> None:
    client = await make_client(store=SqliteStore(tmp_path / "j.db"))
    for path in ("/otp/%ff%fe", "/%c0%80/x"):
        resp = await client.get(path, headers=KEY)
        assert resp.status == 404
    await create(client)  # the batch after them is written
    entries = await journal(client)
    assert [e["status"] for e in entries] == [201, 404, 404]
    assert entries[2]["path"].startswith("/otp/")


async def test_a_large_body_is_kept_as_a_4_kib_prefix(client: Any) -> None:
    body = {"phoneNumber": FR, "template": "{{pin}} " + "y" * 50_000}
    resp = await client.post("/otp", json=body, headers=KEY)
    assert resp.status == 400  # the template is too long: refused, and journaled
    [entry] = await journal(client)
    assert isinstance(entry["body"], str)
    assert len(entry["body"]) == 4096


async def test_a_body_that_never_arrives_is_not_waited_for(make_client: Any) -> None:
    client = await make_client()
    host, port = client.server.host, client.server.port
    head = (
        b"POST /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\nConnection: close\r\n\r\n"
    )
    # (In a thread: the server answers on this test's event loop.)
    status, _ = await asyncio.to_thread(
        raw_http, host, port, head + b'{"phoneNumber": "+336', timeout=3
    )
    assert status == 404
    [entry] = await journal(client)
    assert (entry["path"], entry["status"], entry["body"]) == ("/nowhere", 404, None)


async def test_a_client_secret_in_a_token_form_is_never_kept(make_client: Any) -> None:
    client = await make_client(oauth_clients=(("app", "s3cret"),))
    basic = base64.b64encode(b"app:s3cret").decode()
    resp = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_secret": "s3cret"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert resp.status == 200
    [entry] = await journal(client, pins="show")
    assert entry["account"] == "app"
    assert entry["body"] == {"grant_type": "client_credentials", "client_secret": "****"}
    assert "s3cret" not in str(await journal(client, pins="show"))


async def test_filter_values_out_of_reason_are_refused_in_the_control_shape(
    client: Any,
) -> None:
    for params, paths in (
        ({"since": "r-" + "9" * 5000}, ("", "/latest")),
        ({"since": "9" * 5000}, ("", "/latest")),
        ({"status": "5" * 5000}, ("", "/latest")),
        ({"pins": "all"}, ("", "/latest")),
        ({"limit": "1" * 5000}, ("",)),
        ({"wait": "1e999"}, ("/latest",)),
    ):
        for path in paths:
            resp = await client.get(f"/_sim/requests{path}", params=params)
            await expect_error(resp, 400, "invalid_param", 1020)
    resp = await client.get("/_sim/requests", params={"path": "/" + "x" * 5000})
    assert resp.status == 200
    assert (await resp.json())["requests"] == []


async def test_a_refused_token_request_keeps_no_secret_either(make_client: Any) -> None:
    client = await make_client(oauth_clients=(("app", "s3cret"),))
    basic = base64.b64encode(b"app:wrong").decode()
    resp = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_secret": "wrong-s3cret"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert resp.status == 401
    [entry] = await journal(client, pins="show")
    assert entry["account"] is None
    assert entry["body"] == {"grant_type": "client_credentials", "client_secret": "****"}


def kept(client: Any) -> str:
    """Everything the store keeps of the journal, PINs and all, as text."""
    return str([r.to_record() for r in client.server.app[SIM].requests(RequestQuery())])


async def test_an_entry_costs_about_its_body_in_memory(make_client: Any) -> None:
    # 4,042 bytes of JSON that parse into 1,345 objects (~107 KB of Python objects).
    body = b'{"x":[' + b",".join([b"{}"] * 1345) + b"]}"
    client = await make_client()
    headers = {"Content-Type": "application/json"}
    for _ in range(5):  # warm-up: first allocations of the path
        await (await client.post("/nope", data=body, headers=headers)).read()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(100):
            resp = await client.post("/nope", data=body, headers=headers)
            assert resp.status == 404
            await resp.read()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 100 * len(body) * 4, f"{grown / 100:.0f} bytes per entry"
    entry = (await journal(client))[0]
    assert entry["body"] == {"x": [{}] * 1345}  # still shown as the object sent


async def test_a_client_secret_is_never_kept_whatever_the_body_format(
    make_client: Any,
) -> None:
    client = await make_client(oauth_clients=(("app", "s3cret"),))
    fields = {"grant_type": "client_credentials", "client_secret": "s3cret", "scope": "otp"}
    multipart = aiohttp.FormData()
    for name, value in fields.items():
        multipart.add_field(name, value, content_type="text/plain")
    for password in ("s3cret", "wrong"):  # accepted, and refused before the body is read
        basic = base64.b64encode(f"app:{password}".encode()).decode()
        auth = {"Authorization": f"Basic {basic}"}
        for kwargs in (
            {"json": fields},
            {"data": multipart},
            {"data": "client_secret=s3cret", "headers": {"Content-Type": "text/plain"}},
            {"data": '{"auth": {"client_secret": "s3cret"}}'},
        ):
            headers = {**auth, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
            resp = await client.post("/oauth/token", headers=headers, **kwargs)
            await resp.read()
    entries = await journal(client, pins="show")
    assert len(entries) == 8
    assert "s3cret" not in str(entries)
    assert "s3cret" not in kept(client)
    json_entry = entries[-1]  # the harmless fields stay readable
    assert json_entry["body"]["grant_type"] == "client_credentials"
    assert json_entry["body"]["scope"] == "otp"
    assert json_entry["body"]["client_secret"] == "****"


async def test_a_secret_sent_to_a_wrong_path_is_not_kept_either(client: Any) -> None:
    resp = await client.post("/oauth/token/", json={"client_secret": "s3cret", "x": 1})
    assert resp.status == 404
    [entry] = await journal(client, pins="show")
    assert entry["body"] == {"client_secret": "****", "x": 1}
    assert "s3cret" not in kept(client)


@pytest.mark.parametrize("db", [False, True], ids=["memory", "sqlite"])
async def test_a_since_id_that_is_not_plain_digits_is_refused(
    make_client: Any, tmp_path: Path, db: bool
) -> None:
    client = await make_client(store=SqliteStore(tmp_path / "j.db") if db else None)
    await create(client)
    for since in ("r-\u00b2", "r-\u2460", "r-\u0663", "r-9223372036854775808", "r-" + "9" * 22):
        for path, extra in (("", {}), ("/latest", {}), ("/latest", {"wait": "0.01"})):
            resp = await client.get(f"/_sim/requests{path}", params={"since": since, **extra})
            await expect_error(resp, 400, "invalid_param", 1020)
    resp = await client.get("/_sim/requests", params={"since": "r-9223372036854775807"})
    assert resp.status == 200


async def test_a_pin_is_masked_whatever_the_form_of_the_body(client: Any) -> None:
    otp = await create(client)
    pin = await pin_of(client, otp["otpId"])
    url = f"/otp/{otp['otpId']}"
    json_headers = {**KEY, "Content-Type": "application/json"}
    padding = "x" * 5000
    for body in (
        '{"p\\u0069n": "' + pin + '", "pad": "' + padding + '"}',  # > 4 KiB: kept as text
        '{"\\u0070in" : ' + pin + ', "pad": "' + padding + '"}',
        '{"pin": ["' + pin + '", 1], "pad": "' + padding + '"}',
        "pin=" + pin,  # not JSON at all
    ):
        resp = await client.post(url, data=body, headers=json_headers)
        await resp.read()  # (refused or not: each is journaled)
    entries = await journal(client)
    assert pin not in str(entries)
    assert pin not in str(await (await client.get("/_sim/requests/latest")).json())
    shown = await journal(client, pins="show")
    assert shown[0]["body"] == "pin=" + pin  # as sent, when asked for


async def test_a_big_integer_is_shown_as_sent(client: Any) -> None:
    resp = await client.post("/nope", data='{"n": 123456789012345678901234567890}')
    assert resp.status == 404
    [entry] = await journal(client)
    assert "123456789012345678901234567890" in str(entry["body"])
    assert "e+29" not in str(entry["body"])
