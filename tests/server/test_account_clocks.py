"""An account's own clock on a shared simulator: its jumps move nobody else's time."""

from __future__ import annotations

import base64
from typing import Any

from support import FR, START, expect_error

from otpsim.clock import iso

ALICE = {"X-API-KEY": "alice"}
BOB = {"X-API-KEY": "bob"}
DELAYED = "+15005550003"  # a magic number: delivered after 30 s of simulator time


async def create(client: Any, headers: dict[str, str], phone: str = FR) -> str:
    resp = await client.post("/otp", json={"phoneNumber": phone}, headers=headers)
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["otpId"])


async def advance(client: Any, seconds: float, account: str | None = None) -> Any:
    params = {"account": account} if account else {}
    resp = await client.post("/_sim/clock", json={"advance": seconds}, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def otp(client: Any, otp_id: str) -> Any:
    return await (await client.get(f"/_sim/otps/{otp_id}")).json()


async def test_one_accounts_jump_expires_its_otps_only(client: Any) -> None:
    mine, theirs = await create(client, ALICE), await create(client, BOB)
    moved = await advance(client, 400, "alice")
    assert (moved["now"], moved["own"]) == (iso(START + 400), True)
    assert (await otp(client, mine))["status"] == "EXPIRED"
    assert (await otp(client, theirs))["status"] == "PENDING"
    resp = await client.post(f"/otp/{theirs}", json={"pin": "000000"}, headers=BOB)
    assert (await resp.json())["error"]["type"] != "otp_expired"
    # The shared clock, and bob's, did not move.
    assert (await (await client.get("/_sim/clock")).json())["now"] == iso(START)
    bobs = await (await client.get("/_sim/clock", params={"account": "bob"})).json()
    assert (bobs["now"], bobs["own"]) == (iso(START), False)


async def test_an_accounts_otps_and_sms_are_stamped_on_its_clock(client: Any) -> None:
    await advance(client, 1000, "alice")
    mine = await create(client, ALICE, DELAYED)
    theirs = await create(client, BOB, DELAYED)
    created = await otp(client, mine)
    assert created["dateCreated"] == iso(START + 1000)
    await advance(client, 45, "alice")
    latest = await client.get("/_sim/messages/latest", params={"otpId": mine})
    message = await latest.json()
    assert (message["status"], message["deliveredAt"]) == ("DELIVERED", iso(START + 1030))
    # bob's SMS is still on its way: his clock has not reached its delay
    none = await client.get("/_sim/messages/latest", params={"otpId": theirs})
    assert none.status == 404
    await advance(client, 30)  # the shared clock: bob's, and alice's with it
    assert (await client.get("/_sim/messages/latest", params={"otpId": theirs})).status == 200
    assert (await (await client.get("/_sim/clock", params={"account": "alice"})).json())[
        "now"
    ] == iso(START + 1075)


async def test_verifying_uses_the_accounts_clock(client: Any) -> None:
    otp_id = await create(client, ALICE)
    pin = (await otp(client, otp_id))["pin"]
    await advance(client, 400, "alice")
    resp = await client.post(f"/otp/{otp_id}", json={"pin": pin}, headers=ALICE)
    await expect_error(resp, 400, "otp_expired", 2028)


async def test_an_oauth_clients_tokens_expire_on_its_clock(make_client: Any) -> None:
    client = await make_client(oauth_clients=(("app", "s"), ("other", "s")), token_ttl=3600)
    tokens = {}
    for name in ("app", "other"):
        basic = {"Authorization": "Basic " + base64.b64encode(f"{name}:s".encode()).decode()}
        resp = await client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, headers=basic
        )
        tokens[name] = {"Authorization": f"Bearer {(await resp.json())['access_token']}"}
    await advance(client, 7200, "app")
    await expect_error(await client.get("/account/balance", headers=tokens["app"]), 401, *_EXPIRED)
    assert (await client.get("/account/balance", headers=tokens["other"])).status == 200


_EXPIRED = ("invalid_client", 1003)


async def test_resetting_an_account_puts_it_back_on_the_shared_clock(client: Any) -> None:
    await advance(client, 400, "alice")
    assert (await client.post("/_sim/reset", params={"account": "alice"})).status == 200
    mine = await (await client.get("/_sim/clock", params={"account": "alice"})).json()
    assert (mine["now"], mine["own"]) == (iso(START), False)
    otp_id = await create(client, ALICE)
    assert (await otp(client, otp_id))["dateCreated"] == iso(START)


async def test_a_frozen_account_clock_moves_with_a_shared_jump(client: Any) -> None:
    resp = await client.post(
        "/_sim/clock", json={"advance": 10, "freeze": True}, params={"account": "alice"}
    )
    assert (await resp.json())["frozen"] is True
    await advance(client, 100)
    mine = await (await client.get("/_sim/clock", params={"account": "alice"})).json()
    assert mine["now"] == iso(START + 110)


async def test_an_account_far_ahead_does_not_age_out_everyone_elses_records(
    make_client: Any, tmp_path: Any
) -> None:
    """Retention by age is measured on the shared clock: alice two days ahead (beyond
    --max-age, one day) must not make the store forget bob's OTP and SMS of a minute ago."""
    from otpsim.store.retention import Retention
    from otpsim.store.sqlite import SqliteStore

    for store in (None, SqliteStore(tmp_path / "s.db", retention=Retention(100, 86_400))):
        client = await make_client(store=store)
        theirs = await create(client, BOB)
        await advance(client, 2 * 86_400, "alice")
        await create(client, ALICE)
        assert (await client.get(f"/_sim/otps/{theirs}")).status == 200
        messages = await (await client.get("/_sim/messages", params={"account": "bob"})).json()
        assert [m["otpId"] for m in messages["messages"]] == [theirs]
        # Once the shared clock is past --max-age too, bob's go as they always did.
        await advance(client, 2 * 86_400)
        await create(client, BOB)
        assert (await client.get(f"/_sim/otps/{theirs}")).status == 404


async def test_an_account_in_the_past_keeps_its_records_when_others_store_theirs(
    make_client: Any, tmp_path: Any
) -> None:
    """Age is counted from when a record was stored, on the shared clock: alice's scenario
    starts her clock in 2024 (years behind), and bob's ordinary traffic must not make the
    store forget her OTP and SMS (the attacker's repro, both stores)."""
    from otpsim.store.retention import Retention
    from otpsim.store.sqlite import SqliteStore

    past = 'network:\n  clock: {frozen: true, start: "2024-01-01T00:00:00Z"}\n'
    for store in (None, SqliteStore(tmp_path / "p.db", retention=Retention(100, 86_400))):
        client = await make_client(store=store)
        resp = await client.put("/_sim/scenario", data=past, params={"account": "alice"})
        assert resp.status == 200, await resp.text()
        mine = await create(client, ALICE)
        await create(client, BOB)
        assert (await client.get(f"/otp/{mine}", headers=ALICE)).status == 200
        messages = await (await client.get("/_sim/messages", params={"account": "alice"})).json()
        assert [m["otpId"] for m in messages["messages"]] == [mine]
