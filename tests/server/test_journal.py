"""The request journal: every provider-API request, refused or not, in GET /_sim/requests."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from support import FR, KEY, START, create, expect_error, pin_of, sim_of

from otpsim.clock import Clock, iso
from otpsim.config import Settings
from otpsim.server.app import create_app
from otpsim.store.retention import Retention
from otpsim.store.sqlite import SqliteStore

ENTRY_FIELDS = {
    "id", "time", "account", "method", "path", "otpId", "phoneNumber", "requestId", "body",
    "status", "error", "latencyMs", "rules",
}  # fmt: skip
DOWN_FOR_FR = """
name: FR down
network:
  rules:
    - match: "+336*"
      error: 503
      note: carrier down for FR
"""


async def journal(client: Any, **params: Any) -> list[dict[str, Any]]:
    resp = await client.get("/_sim/requests", params=params)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["requests"]  # type: ignore[no-any-return]


async def test_a_created_otp_is_one_entry_in_the_agreed_shape(client: Any) -> None:
    resp = await client.post("/otp", json={"phoneNumber": FR}, headers=KEY)
    otp = await resp.json()
    [entry] = await journal(client)
    assert set(entry) == ENTRY_FIELDS
    assert entry["id"] == "r-000001"
    assert entry["time"] == iso(START)
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/otp", 201)
    assert entry["account"] == "test-key"
    assert entry["otpId"] == otp["otpId"]
    assert entry["phoneNumber"] == FR
    assert entry["requestId"] == resp.headers["X-Request-Id"]
    assert entry["body"] == {"phoneNumber": FR}
    assert entry["error"] is None
    assert entry["rules"] == []
    assert isinstance(entry["latencyMs"], float)
    assert entry["latencyMs"] >= 0


async def test_refused_requests_are_recorded(make_client: Any) -> None:
    client = await make_client(rate_limit=5)  # per account: test-key's 6th call is refused
    await client.put("/_sim/scenario", data=DOWN_FOR_FR)
    await client.post("/otp", json={"phoneNumber": FR})  # no key: 401
    await client.post("/otp", json={"phoneNumber": "12"}, headers=KEY)  # invalid: 400
    await client.post("/otp", json={"phoneNumber": FR}, headers=KEY)  # the rule: 503
    await client.get("/no/such/thing", headers=KEY)  # 404
    await client.put("/otp", headers=KEY)  # 405
    for _ in range(4):  # (404 and 405 are no provider route: not counted)
        await client.get("/account/balance", headers=KEY)
    entries = list(reversed(await journal(client)))
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("POST", "/otp", 401),
        ("POST", "/otp", 400),
        ("POST", "/otp", 503),
        ("GET", "/no/such/thing", 404),
        ("PUT", "/otp", 405),
        ("GET", "/account/balance", 200),
        ("GET", "/account/balance", 200),
        ("GET", "/account/balance", 200),
        ("GET", "/account/balance", 429),
    ]
    unauthenticated, invalid, down, missing = entries[:4]
    assert unauthenticated["account"] is None
    assert unauthenticated["error"]["type"] == "invalid_api_key"
    assert unauthenticated["body"] == {"phoneNumber": FR}  # refused before it was read
    assert invalid["error"]["type"] == "invalid_param"
    assert invalid["body"] == {"phoneNumber": "12"}
    assert down["error"] == {
        "type": "server_error",
        "code": 1016,
        "message": down["error"]["message"],
    }
    assert down["rules"] == ["carrier down for FR"]
    assert down["phoneNumber"] == FR
    assert down["otpId"] is None
    assert missing["error"]["message"] == "No such endpoint: GET /no/such/thing"
    assert entries[-1]["error"]["type"] == "rate_limit"


async def test_the_control_api_and_the_page_are_not_journaled(client: Any) -> None:
    await client.get("/_sim/messages")
    await client.get("/")
    await client.post("/_sim/clock", json={"advance": 1})
    assert await journal(client) == []


async def test_pins_are_masked_unless_asked_for(client: Any) -> None:
    otp = await create(client)
    pin = await pin_of(client, otp["otpId"])
    resp = await client.post(f"/otp/{otp['otpId']}", json={"pin": pin}, headers=KEY)
    assert resp.status == 200
    await client.post(f"/otp/{otp['otpId']}", data='{"pin": "12', headers=KEY)  # not JSON
    broken, verify = (await journal(client))[:2]
    assert verify["body"] == {"pin": "****"}
    assert verify["otpId"] == otp["otpId"]
    assert verify["phoneNumber"] == FR
    assert pin not in str(await journal(client))
    assert '"pin": "****"' in broken["body"]
    assert broken["status"] == 400
    shown = (await journal(client, pins="show"))[1]
    assert shown["body"] == {"pin": pin}
    resp = await client.get("/_sim/requests", params={"pins": "yes"})
    await expect_error(resp, 400, "invalid_param", 1020)


async def test_a_number_as_sent_is_found_by_the_phone_filter(client: Any) -> None:
    await client.put("/_sim/scenario", data=DOWN_FOR_FR)
    resp = await client.post("/otp", json={"phoneNumber": "+33 6 12 34 56 78"}, headers=KEY)
    assert resp.status == 503
    [entry] = await journal(client, phoneNumber=FR)
    assert entry["body"] == {"phoneNumber": "+33 6 12 34 56 78"}  # the body as sent


async def test_a_refused_verify_names_its_otp_and_number(client: Any) -> None:
    otp = await create(client)
    resp = await client.post(f"/otp/{otp['otpId']}", json={"pin": "000000x"}, headers=KEY)
    assert resp.status == 400
    entry = (await journal(client))[0]
    assert (entry["otpId"], entry["phoneNumber"]) == (otp["otpId"], FR)


async def test_a_large_or_unreadable_body_is_a_bounded_text_prefix(client: Any) -> None:
    big = {"phoneNumber": FR, "template": "x" * 10_000}
    await client.post("/otp", json=big, headers=KEY)
    await client.post("/otp", data=b"\xff\xfe not text", headers=KEY)
    garbled, large = await journal(client)
    assert isinstance(large["body"], str)
    assert len(large["body"]) == 4096
    assert large["body"].startswith('{"phoneNumber"')
    assert isinstance(garbled["body"], str)
    assert garbled["status"] == 400


async def test_filters(client: Any) -> None:
    first = await create(client)
    await create(client, phoneNumber="+4915123456789")
    await client.post("/otp", json={"phoneNumber": FR}, headers={"X-API-KEY": "other"})
    await client.get(f"/otp/{first['otpId']}", headers=KEY)
    await client.get("/nope", headers=KEY)
    everything = await journal(client)
    assert len(everything) == 5
    assert [e["status"] for e in await journal(client, status="4xx")] == [404]
    assert [e["status"] for e in await journal(client, status="404")] == [404]
    assert len(await journal(client, path="/otp")) == 3
    assert len(await journal(client, path="/otp*")) == 4
    assert len(await journal(client, method="get")) == 2
    assert len(await journal(client, account="other")) == 1
    assert len(await journal(client, phoneNumber=FR)) == 3  # the GET found the OTP's number
    assert len(await journal(client, otpId=first["otpId"].upper())) == 2
    assert [e["id"] for e in await journal(client, since="r-000003")] == ["r-000005", "r-000004"]
    assert len(await journal(client, since=iso(START))) == 5
    assert await journal(client, since=iso(START + 1)) == []
    assert len(await journal(client, limit=2)) == 2
    for bad in ({"status": "6xx"}, {"status": "abc"}, {"since": "yesterday"}, {"path": "otp"},
                {"limit": "0"}):  # fmt: skip
        resp = await client.get("/_sim/requests", params=bad)
        await expect_error(resp, 400, "invalid_param", 1020)


async def test_delete_clears_all_or_one_account(client: Any) -> None:
    await create(client)
    await client.post("/otp", json={"phoneNumber": FR}, headers={"X-API-KEY": "other"})
    resp = await client.delete("/_sim/requests", params={"account": "other"})
    assert resp.status == 200
    assert [e["account"] for e in await journal(client)] == ["test-key"]
    await client.delete("/_sim/requests")
    assert await journal(client) == []
    await create(client)
    assert [e["id"] for e in await journal(client)] == ["r-000003"]  # numbering goes on


async def test_reset_empties_the_journal(client: Any) -> None:
    await create(client)
    await client.post("/_sim/reset")
    assert await journal(client) == []


async def test_retention_bounds_the_journal_by_count_and_age(make_client: Any) -> None:
    client = await make_client(max_requests=3, max_age=600)
    for _ in range(5):
        await client.get("/account/balance", headers=KEY)
    assert [e["id"] for e in await journal(client)] == ["r-000005", "r-000004", "r-000003"]
    await client.post("/_sim/clock", json={"advance": 601})
    await client.get("/account/balance", headers=KEY)
    assert [e["id"] for e in await journal(client)] == ["r-000006"]


async def test_latest_and_waiting_for_a_request(client: Any) -> None:
    resp = await client.get("/_sim/requests/latest")
    await expect_error(resp, 404, "not_found", 1021)
    waiting = asyncio.ensure_future(
        client.get("/_sim/requests/latest", params={"path": "/otp", "status": "201", "wait": 5})
    )
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await client.get("/account/balance", headers=KEY)  # does not match: still waiting
    otp = await create(client)
    resp = await asyncio.wait_for(waiting, 5)
    assert resp.status == 200
    assert (await resp.json())["otpId"] == otp["otpId"]
    resp = await client.get("/_sim/requests/latest", params={"method": "GET"})
    assert (await resp.json())["path"] == "/account/balance"


async def test_a_wait_ends_when_the_clock_passes_it(client: Any) -> None:
    waiting = asyncio.ensure_future(client.get("/_sim/requests/latest", params={"wait": 30}))
    await asyncio.sleep(0.05)
    await client.post("/_sim/clock", json={"advance": 31})
    resp = await asyncio.wait_for(waiting, 10)
    await expect_error(resp, 404, "not_found", 1021)


async def test_request_logged_reaches_websocket_subscribers(client: Any) -> None:
    async with client.ws_connect("/_sim/ws") as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        otp = await create(client)
        pin = await pin_of(client, otp["otpId"])
        await client.post(f"/otp/{otp['otpId']}", json={"pin": pin}, headers=KEY)
        logged = []
        while len(logged) < 2:
            event = await ws.receive_json(timeout=5)
            if event["type"] == "request.logged":
                logged.append(event)
    assert logged[0]["v"] == 1
    assert set(logged[0]["data"]) == ENTRY_FIELDS
    assert logged[0]["data"]["status"] == 201
    assert logged[1]["data"]["body"] == {"pin": "****"}  # masked on the wire


@pytest.mark.parametrize("rule", ["carrier", "magic"])
async def test_the_rule_that_fired_is_named(client: Any, rule: str) -> None:
    if rule == "carrier":
        await client.put("/_sim/scenario", data=DOWN_FOR_FR)
        phone = FR
    else:
        phone = "+15005550006"
    await client.post("/otp", json={"phoneNumber": phone}, headers=KEY)
    await create(client, phoneNumber="+4915123456789")  # no rule
    second, first = await journal(client)
    expected = (
        "carrier down for FR" if rule == "carrier" else "the provider is unavailable: HTTP 503"
    )
    assert first["rules"] == [expected]
    assert first["status"] == 503
    assert second["rules"] == []


async def test_the_sqlite_journal_survives_a_restart(
    make_client: Any, aiohttp_client: Any, tmp_path: Path
) -> None:
    db = tmp_path / "journal.db"
    settings = Settings(max_requests=50)
    client = await make_client(settings, store=SqliteStore(db, retention=Retention(max_requests=3)))
    otp = await create(client)
    pin = await pin_of(client, otp["otpId"])
    await client.post(f"/otp/{otp['otpId']}", json={"pin": pin}, headers=KEY)
    for _ in range(3):
        await client.get("/nope", headers=KEY)
    await sim_of(client).wait_durable()
    before = await journal(client, pins="show")
    assert [e["id"] for e in before] == ["r-000005", "r-000004", "r-000003"]
    await client.close()
    store = SqliteStore(db, retention=Retention(max_requests=3))
    clock = Clock(start=START, frozen=True)  # the first one's saves to the closed file
    again = await aiohttp_client(create_app(settings, clock=clock, store=store))
    assert await journal(again, pins="show") == before
    await create(again)
    assert (await journal(again))[0]["id"] == "r-000006"
    assert len(await journal(again, status="4xx")) == 2
    assert len(await journal(again, path="/no*")) == 2


async def test_a_journal_that_cannot_be_written_costs_no_answer(
    make_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteStore(tmp_path / "j.db")
    client = await make_client(store=store)

    def broken(records: Any) -> None:
        raise OSError("no room for the journal")

    store._insert_requests = broken  # type: ignore[method-assign]
    for _ in range(3):
        await create(client)
    await sim_of(client).wait_durable()
    assert len((await (await client.get("/_sim/otps")).json())["otps"]) == 3
    assert caplog.text.count("request journal entries dropped") == 1  # once per outage


class FullDisk:
    """A store's connection on a disk that fills up: once ``full``, every write and
    every COMMIT fails as SQLite's would ("database or disk is full")."""

    WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "COMMIT")

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.full = False

    def _check(self, sql: str) -> None:
        if self.full and sql.lstrip().split(None, 1)[0].upper() in self.WRITES:
            raise sqlite3.OperationalError("database or disk is full")

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._check(sql)
        return self._db.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._check(sql)
        return self._db.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


async def test_reads_answer_while_the_disk_is_full_and_the_journal_is_dropped(
    make_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A read writes the journal entries still pending first (it must see them); on a
    full disk those are dropped, once logged, and the read answers as usual."""
    store = SqliteStore(tmp_path / "j.db")
    client = await make_client(store=store)
    otp = await create(client)
    await sim_of(client).wait_durable()
    disk = FullDisk(store._db)
    store._db = disk  # type: ignore[assignment]
    disk.full = True
    for _ in range(3):
        assert (await client.get("/nope", headers=KEY)).status == 404  # journaled, behind
        assert (await client.get(f"/otp/{otp['otpId']}", headers=KEY)).status == 200
        assert (await client.get("/_sim/otps")).status == 200
    assert "unexpected error" not in caplog.text
    assert caplog.text.count("request journal entries dropped") == 1  # once per outage
    disk.full = False


async def test_an_endpoint_fault_is_journaled_with_its_rule(client: Any) -> None:
    scenario = (
        'network:\n  rules:\n    - {match: "*", on: status, error: 503, note: status outage}\n'
    )
    assert (await client.put("/_sim/scenario", data=scenario)).status == 200
    otp = await create(client)
    resp = await client.get(f"/otp/{otp['otpId']}", headers=KEY)
    assert resp.status == 503
    entry = (await journal(client))[0]
    assert (entry["path"], entry["status"]) == (f"/otp/{otp['otpId']}", 503)
    assert entry["rules"] == ["status outage"]
    assert (entry["otpId"], entry["phoneNumber"]) == (otp["otpId"], FR)
