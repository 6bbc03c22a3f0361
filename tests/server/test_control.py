"""The control API: messages, the long-poll wait, OTPs with PINs, the clock, reset."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support import FR, KEY, START, create, expect_error, pin_of, sim_of

from otpsim import __version__
from otpsim.clock import iso

DE = "+4915123456789"
MESSAGE_FIELDS = {
    "id", "seq", "otpId", "account", "phoneNumber", "countryIso", "from", "text", "pin", "parts",
    "encoding", "status", "createdAt", "deliveredAt", "deliverAt",
}  # fmt: skip


async def test_health(client: Any) -> None:
    resp = await client.get("/_sim/health")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "version": __version__}


async def test_messages_newest_first_with_filters(client: Any) -> None:
    first = await create(client)
    second = await create(client, phoneNumber=DE)
    third = await create(client)
    body = await (await client.get("/_sim/messages")).json()
    assert [m["otpId"] for m in body["messages"]] == [
        third["otpId"],
        second["otpId"],
        first["otpId"],
    ]
    message = body["messages"][0]
    assert set(message) >= MESSAGE_FIELDS
    assert message["status"] == "DELIVERED"
    assert message["deliveredAt"] == iso(START)
    assert message["from"] == "OTPSIM"
    assert message["encoding"] == "GSM-7"
    assert message["pin"] in message["text"]

    by_phone = await (await client.get("/_sim/messages", params={"phoneNumber": FR})).json()
    assert [m["otpId"] for m in by_phone["messages"]] == [third["otpId"], first["otpId"]]
    # An unencoded '+' arrives as a space; the filter still matches.
    raw = await (await client.get(f"/_sim/messages?phoneNumber={FR}&limit=1")).json()
    assert [m["otpId"] for m in raw["messages"]] == [third["otpId"]]
    by_otp = await (await client.get("/_sim/messages", params={"otpId": second["otpId"]})).json()
    assert [m["phoneNumber"] for m in by_otp["messages"]] == [DE]


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "phoneNumber=abc", "wait=-1"])
async def test_bad_query_parameters_are_400(client: Any, query: str) -> None:
    path = "/_sim/messages/latest" if query.startswith("wait") else "/_sim/messages"
    await expect_error(await client.get(f"{path}?{query}"), 400, "invalid_param", 1020)


async def test_latest_returns_the_newest_for_the_number(client: Any) -> None:
    await create(client)
    newest = await create(client)
    resp = await client.get("/_sim/messages/latest", params={"phoneNumber": FR})
    body = await resp.json()
    assert body["otpId"] == newest["otpId"]


async def test_latest_without_wait_is_404_when_nothing_arrived(client: Any) -> None:
    resp = await client.get("/_sim/messages/latest", params={"phoneNumber": FR})
    err = await expect_error(resp, 404, "not_found", 1021)
    assert FR in err["message"]


async def test_latest_wait_returns_as_soon_as_the_sms_arrives(client: Any) -> None:
    waiting = asyncio.ensure_future(
        client.get("/_sim/messages/latest", params={"phoneNumber": FR, "wait": "30"})
    )
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await create(client, phoneNumber=DE)  # another number does not end the wait
    await asyncio.sleep(0.05)
    assert not waiting.done()
    otp = await create(client)
    resp = await asyncio.wait_for(waiting, timeout=5)  # far sooner than the 30 s wait
    assert resp.status == 200
    assert (await resp.json())["otpId"] == otp["otpId"]


async def test_latest_wait_ends_with_404_after_the_wait(client: Any) -> None:
    resp = await asyncio.wait_for(
        client.get("/_sim/messages/latest", params={"phoneNumber": FR, "wait": "0.2"}), timeout=5
    )
    err = await expect_error(resp, 404, "not_found", 1021)
    assert "within 0.2s" in err["message"]


async def test_latest_wait_ends_when_the_clock_is_moved_past_it(client: Any) -> None:
    waiting = asyncio.ensure_future(
        client.get("/_sim/messages/latest", params={"phoneNumber": FR, "wait": "30"})
    )
    await asyncio.sleep(0.05)
    await client.post("/_sim/clock", json={"advance": 31})
    resp = await asyncio.wait_for(waiting, timeout=5)
    await expect_error(resp, 404, "not_found", 1021)


async def test_latest_wait_is_capped(client: Any) -> None:
    resp = await client.get("/_sim/messages/latest", params={"wait": "3600"})
    await expect_error(resp, 400, "invalid_param", 1020)


async def test_delete_messages_empties_the_inbox_only(client: Any) -> None:
    otp = await create(client)
    assert (await client.delete("/_sim/messages")).status == 200
    assert (await (await client.get("/_sim/messages")).json())["messages"] == []
    assert (await client.get(f"/otp/{otp['otpId']}", headers=KEY)).status == 200


async def test_reading_does_not_consume(client: Any) -> None:
    await create(client)
    for _ in range(2):
        body = await (await client.get("/_sim/messages")).json()
        assert len(body["messages"]) == 1


async def test_sim_otp_shows_pin_and_attempt_history(client: Any) -> None:
    otp = await create(client, maxAttempts=5, pinType="letters")
    otp_id = otp["otpId"]
    await client.post(f"/otp/{otp_id}", json={"pin": "0000"}, headers=KEY)
    pin = await pin_of(client, otp_id)
    await client.post(f"/otp/{otp_id}", json={"pin": pin}, headers=KEY)
    body = await (await client.get(f"/_sim/otps/{otp_id}")).json()
    assert body["pin"] == pin
    assert body["status"] == "VERIFIED"
    assert body["attempts"] == 1
    assert body["account"] == KEY["X-API-KEY"]
    assert [(a["pin"], a["result"], a["code"]) for a in body["verifyAttempts"]] == [
        ("0000", "invalid_pin", 2029),
        (pin, "VERIFIED", None),
    ]
    listed = await (await client.get("/_sim/otps", params={"status": "verified"})).json()
    assert [o["otpId"] for o in listed["otps"]] == [otp_id]
    await expect_error(await client.get("/_sim/otps?status=LOST"), 400, "invalid_param", 1020)


async def test_clock_read_and_move(client: Any) -> None:
    body = await (await client.get("/_sim/clock")).json()
    assert body["now"] == iso(START)
    assert body["frozen"] is True
    moved = await (await client.post("/_sim/clock", json={"advance": 90})).json()
    assert moved["now"] == iso(START + 90)
    moved = await (
        await client.post("/_sim/clock", json={"set": "2031-06-01T00:00:00Z", "advance": 5})
    ).json()
    assert moved["now"] == "2031-06-01T00:00:05.000Z"
    thawed = await (await client.post("/_sim/clock", json={"freeze": False})).json()
    assert thawed["frozen"] is False


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"advance": "ten"},
        {"advance": True},
        {"set": "yesterday"},
        {"freeze": "yes"},
        {"jump": 1},
    ],
)
async def test_bad_clock_requests_move_nothing(client: Any, body: dict[str, Any]) -> None:
    before = sim_of(client).now()
    resp = await client.post(
        "/_sim/clock", json={**body, **({"advance": 10} if "jump" in body else {})}
    )
    await expect_error(resp, 400, "invalid_param", 1020)
    assert sim_of(client).now() == before


async def test_reset_clears_everything(client: Any) -> None:
    otp = await create(client)
    await client.post("/_sim/clock", json={"advance": 600})
    assert (await client.post("/_sim/reset")).status == 200
    assert (await (await client.get("/_sim/messages")).json())["messages"] == []
    await expect_error(
        await client.get(f"/otp/{otp['otpId']}", headers=KEY), 404, "not_found", 2021
    )
    assert (await (await client.get("/_sim/clock")).json())["now"] == iso(START)


async def test_events_are_published_for_each_change(client: Any) -> None:
    seen: list[tuple[str, str | None]] = []
    sim_of(client).subscribe(lambda e: seen.append((e.type, e.data.get("status"))))
    otp = await create(client)
    await client.delete(f"/otp/{otp['otpId']}", headers=KEY)
    assert seen == [
        ("otp.created", "PENDING"),
        ("message.created", "QUEUED"),
        ("message.delivered", "DELIVERED"),
        ("request.logged", 201),  # the request journal's entry, once the answer is known
        ("otp.updated", "CANCELLED"),
        ("request.logged", 200),
    ]


async def test_inbox_page_shell_and_static_files(client: Any) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    html = await resp.text()
    assert f'src="/static/inbox.js?v={__version__}"' in html
    assert "http://" not in html
    assert "https://" not in html
    for path, kind in (("/static/inbox.js", "javascript"), ("/static/inbox.css", "text/css")):
        static = await client.get(path)
        assert static.status == 200, path
        assert kind in static.content_type
    assert (await client.get("/static/../otpsim/__init__.py")).status in (403, 404)


async def test_the_favicon_is_served_not_a_404(client: Any) -> None:
    html = await (await client.get("/")).text()
    assert '<link rel="icon" href="/static/favicon.svg' in html
    for path, kind in (("/favicon.ico", "image/x-icon"), ("/static/favicon.svg", "image/svg+xml")):
        resp = await client.get(path)
        assert resp.status == 200, path
        assert resp.content_type == kind, path
        assert await resp.read()
    assert (await client.get("/favicon.ico")).headers["Cache-Control"].startswith("public")
