"""The request journal under hostile input: what a client sends is kept bounded, never
awaited, never fatal to the store, and never a secret."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

from support import FR, KEY, create, expect_error, raw_http

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
