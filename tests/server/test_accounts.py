"""Each credential is its own account: isolation on the provider and control APIs."""

from __future__ import annotations

from typing import Any

from support import FR, START, expect_error, sim_of

from otpsim.clock import iso

ALICE = {"X-API-KEY": "alice"}
BOB = {"X-API-KEY": "bob"}


async def create(client: Any, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    resp = await client.post("/otp", json={"phoneNumber": FR, **body}, headers=headers)
    assert resp.status == 201
    return await resp.json()  # type: ignore[no-any-return]


async def test_another_account_cannot_see_verify_or_cancel_an_otp(client: Any) -> None:
    otp = await create(client, ALICE)
    url = f"/otp/{otp['otpId']}"
    await expect_error(await client.get(url, headers=BOB), 404, "not_found", 2021)
    await expect_error(
        await client.post(url, json={"pin": "1"}, headers=BOB), 404, "not_found", 2021
    )
    await expect_error(await client.delete(url, headers=BOB), 404, "not_found", 2021)
    assert (await client.get(url, headers=ALICE)).status == 200
    assert sim_of(client).get_otp(otp["otpId"]).attempts == 0


async def test_an_oauth_client_is_one_account_across_its_tokens(client: Any) -> None:
    import base64

    basic = {"Authorization": "Basic " + base64.b64encode(b"app:secret").decode()}
    tokens = []
    for _ in range(2):
        resp = await client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, headers=basic
        )
        tokens.append({"Authorization": f"Bearer {(await resp.json())['access_token']}"})
    otp = await create(client, tokens[0])
    assert (await client.get(f"/otp/{otp['otpId']}", headers=tokens[1])).status == 200


async def test_control_api_filters_by_account(client: Any) -> None:
    a = await create(client, ALICE)
    b = await create(client, BOB)
    for path, key in (("/_sim/messages", "messages"), ("/_sim/otps", "otps")):
        body = await (await client.get(path, params={"account": "alice"})).json()
        assert [item["otpId"] for item in body[key]] == [a["otpId"]]
    latest = await client.get("/_sim/messages/latest", params={"phoneNumber": FR, "account": "bob"})
    assert (await latest.json())["otpId"] == b["otpId"]
    everyone = await (await client.get("/_sim/messages")).json()
    assert len(everyone["messages"]) == 2


async def test_account_scoped_reset_and_clear_leave_others_alone(client: Any) -> None:
    a = await create(client, ALICE)
    b = await create(client, BOB)
    sim_of(client).move_clock(advance=10)
    assert (await client.delete("/_sim/messages", params={"account": "alice"})).status == 200
    left = await (await client.get("/_sim/messages")).json()
    assert [m["otpId"] for m in left["messages"]] == [b["otpId"]]
    assert (await client.post("/_sim/reset", params={"account": "bob"})).status == 200
    assert (await (await client.get("/_sim/messages")).json())["messages"] == []
    assert (await client.get(f"/otp/{a['otpId']}", headers=ALICE)).status == 200  # kept
    await expect_error(await client.get(f"/otp/{b['otpId']}", headers=BOB), 404, "not_found", 2021)
    clock = await (await client.get("/_sim/clock")).json()
    assert clock["now"] == iso(START + 10)  # a scoped reset leaves the shared clock alone
