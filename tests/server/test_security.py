"""Safe defaults: the admin token, cross-site refusal, non-loopback rules, hostile input."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import WSMsgType
from support import FR, KEY, expect_error

from otpsim.config import Settings, load_settings
from otpsim.errors import OtpsimError

ADMIN = {"Authorization": "Bearer s3cret-admin"}


@pytest.fixture
async def guarded(make_client: Any) -> Any:
    return await make_client(Settings(admin_token="s3cret-admin"))


async def test_control_api_and_inbox_need_the_admin_token(guarded: Any) -> None:
    for method, path in (("GET", "/_sim/messages"), ("POST", "/_sim/reset"), ("GET", "/_sim/otps"),
                         ("GET", "/_sim/metrics"), ("POST", "/_sim/clock")):  # fmt: skip
        resp = await guarded.request(method, path, json={"advance": 1})
        await expect_error(resp, 401, "unauthorized", 1024)
    assert (await guarded.get("/_sim/messages", headers=ADMIN)).status == 200
    wrong = {"Authorization": "Bearer nope"}
    await expect_error(
        await guarded.get("/_sim/messages", headers=wrong), 401, "unauthorized", 1024
    )
    assert (await guarded.get("/_sim/health")).status == 200  # for otpsim wait


async def test_the_provider_api_keeps_its_own_credentials(guarded: Any) -> None:
    resp = await guarded.post("/otp", json={"phoneNumber": FR}, headers=KEY)
    assert resp.status == 201


async def test_the_inbox_shows_a_login_page_and_the_token_sets_a_cookie(guarded: Any) -> None:
    resp = await guarded.get("/")
    assert resp.status == 401
    page = await resp.text()
    assert 'action="/_sim/login"' in page
    assert "inbox.js" not in page
    bad = await guarded.post("/_sim/login", data={"token": "guess"}, allow_redirects=False)
    assert bad.status == 401
    good = await guarded.post("/_sim/login", data={"token": "s3cret-admin"}, allow_redirects=False)
    assert good.status == 303
    cookie = good.cookies["otpsim_admin"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert (await guarded.get("/")).status == 200  # the client keeps the cookie
    assert (await guarded.get("/_sim/messages")).status == 200


async def test_signing_in_returns_to_the_page_asked_for(guarded: Any) -> None:
    resp = await guarded.get("/?account=alice&x=<b>")
    assert resp.status == 401
    page = await resp.text()
    assert 'name="next" value="/?account=alice&amp;x=%3Cb%3E"' in page  # escaped
    good = await guarded.post(
        "/_sim/login",
        data={"token": "s3cret-admin", "next": "/?account=alice"},
        allow_redirects=False,
    )
    assert good.status == 303
    assert good.headers["Location"] == "/?account=alice"
    bad = await guarded.post(
        "/_sim/login", data={"token": "nope", "next": "/?account=bob"}, allow_redirects=False
    )
    assert bad.status == 401
    assert 'name="next" value="/?account=bob"' in await bad.text()  # kept for the retry
    shown = await guarded.get("/_sim/login?next=/%3Faccount%3Dcarol")
    assert 'name="next" value="/?account=carol"' in await shown.text()


async def test_the_login_page_is_styled_under_a_strict_policy(guarded: Any) -> None:
    resp = await guarded.get("/_sim/login")
    policy = resp.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy
    assert "style-src 'sha256-" in policy
    assert "frame-ancestors 'none'" in policy
    page = await resp.text()
    assert "prefers-color-scheme: dark" in page
    assert "http://" not in page
    assert "https://" not in page


async def test_page_assets_load_on_any_name_behind_the_admin_token(guarded: Any) -> None:
    # In a container (--host 0.0.0.0 --admin-token) the page is opened by a name of the
    # host's: its script, style and icon come from that name too, sent by the browser.
    browser = {"Host": "otpsim.internal:8790", "Sec-Fetch-Site": "same-origin"}
    for path in ("/static/inbox.js", "/static/inbox.css", "/favicon.ico"):
        resp = await guarded.get(path, headers=browser)
        assert resp.status == 200, (path, await resp.text())
    resp = await guarded.post("/otp", json={"phoneNumber": FR}, headers={**KEY, **browser})
    await expect_error(resp, 403, "access_denied", 1036)  # the provider API still refuses


async def test_the_websocket_needs_the_token_too(guarded: Any) -> None:
    resp = await guarded.get("/_sim/ws")
    await expect_error(resp, 401, "unauthorized", 1024)
    async with guarded.ws_connect("/_sim/ws", headers=ADMIN) as ws:
        hello = await asyncio.wait_for(ws.receive_json(), timeout=5)
        assert hello["type"] == "hello"


@pytest.mark.parametrize(("method", "path"), [("POST", "/_sim/reset"), ("POST", "/_sim/clock"),
                                               ("DELETE", "/_sim/messages"), ("PUT", "/_sim/scenario")])  # fmt: skip
async def test_cross_site_state_changes_are_refused(client: Any, method: str, path: str) -> None:
    evil = {"Origin": "https://evil.example", "Content-Type": "text/plain"}
    resp = await client.request(method, path, data='{"advance": 600}', headers=evil)
    await expect_error(resp, 403, "access_denied", 1022)
    same = {"Origin": str(client.make_url("")).rstrip("/")}
    assert (await client.post("/_sim/reset", headers=same)).status == 200
    assert (await client.post("/_sim/reset")).status == 200  # non-browser clients send none


def test_listening_beyond_loopback_needs_an_admin_token() -> None:
    with pytest.raises(
        OtpsimError, match=r"--host: listening on 0\.0\.0\.0 .* needs --admin-token"
    ):
        load_settings(cli={"host": "0.0.0.0"}, env={})
    assert load_settings(cli={"host": "0.0.0.0", "admin_token": "t"}, env={}).host == "0.0.0.0"
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert load_settings(cli={"host": host}, env={}).host == host


async def test_a_template_with_thousands_of_placeholders_is_refused(client: Any) -> None:
    resp = await client.post(
        "/otp", json={"phoneNumber": FR, "template": "{{pin}}" * 5000}, headers=KEY
    )
    err = await expect_error(resp, 400, "invalid_param", 2006)
    assert "too long" in err["message"]
    ok = await client.post(
        "/otp", json={"phoneNumber": FR, "template": "{{pin}} " * 200}, headers=KEY
    )
    assert ok.status == 201


async def test_an_enormous_phone_string_is_just_invalid(client: Any) -> None:
    resp = await client.post("/otp", json={"phoneNumber": "+33" + "6" * 20000}, headers=KEY)
    await expect_error(resp, 400, "invalid_param", 2020)


async def test_a_chatty_websocket_client_is_cut_off(client: Any) -> None:
    async with client.ws_connect("/_sim/ws") as ws:
        await ws.receive_json()
        for _ in range(150):
            await ws.send_str("hi")
        closed = await asyncio.wait_for(ws.receive(), timeout=5)
        assert closed.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    assert (await client.get("/_sim/health")).status == 200


async def test_a_malformed_login_form_is_a_clear_401(guarded: Any) -> None:
    resp = await guarded.post(
        "/_sim/login", data=b"token=", headers={"Content-Type": "multipart/form-data"}
    )
    assert resp.status == 401
    assert "not the admin token" in await resp.text()
