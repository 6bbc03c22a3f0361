"""One account's scenario on a shared simulator: it applies to that account only."""

from __future__ import annotations

import base64
from typing import Any

from support import FR, expect_error

ALICE = {"X-API-KEY": "alice"}
BOB = {"X-API-KEY": "bob"}

DOWN = """
name: provider down
network:
  rules:
    - match: "*"
      error: 503
"""


async def post_otp(client: Any, headers: dict[str, str], phone: str = FR) -> Any:
    return await client.post("/otp", json={"phoneNumber": phone}, headers=headers)


async def put(client: Any, body: str, account: str | None = None, **headers: str) -> Any:
    params = {"account": account} if account else {}
    return await client.put("/_sim/scenario", data=body, params=params, headers=headers)


async def test_an_accounts_scenario_applies_to_that_account_only(client: Any) -> None:
    resp = await put(client, DOWN, "alice")
    assert resp.status == 200
    assert (await resp.json())["name"] == "provider down"
    await expect_error(await post_otp(client, ALICE), 503, "server_error", 1016)
    assert (await post_otp(client, BOB)).status == 201
    # The global scenario is untouched; alice's shows for alice only.
    assert (await (await client.get("/_sim/scenario")).json())["active"] is False
    mine = await (await client.get("/_sim/scenario", params={"account": "alice"})).json()
    assert (mine["active"], mine["own"], mine["name"]) == (True, True, "provider down")
    # DELETE ?account=: alice is back on the global network.
    assert (await client.delete("/_sim/scenario", params={"account": "alice"})).status == 200
    assert (await post_otp(client, ALICE)).status == 201


async def test_an_oauth_client_is_the_account_its_tokens_act_as(client: Any) -> None:
    assert (await put(client, DOWN, "my-app")).status == 200
    basic = {"Authorization": "Basic " + base64.b64encode(b"my-app:s3cret").decode()}
    resp = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=basic
    )
    token = (await resp.json())["access_token"]
    await expect_error(
        await post_otp(client, {"Authorization": f"Bearer {token}"}), 503, "server_error", 1016
    )
    assert (await post_otp(client, ALICE)).status == 201


async def test_an_accounts_scenario_replaces_the_global_one_wholly(client: Any) -> None:
    everyone = (
        "network:\n  defaults: {ttl: 900}\n  rules:\n    - {match: '*', deliver: {delay: 30}}\n"
    )
    assert (await put(client, everyone)).status == 200
    own = "network:\n  defaults: {pinLength: 8}\n"
    assert (await put(client, own, "alice")).status == 200
    a = await (await post_otp(client, ALICE)).json()
    b = await (await post_otp(client, BOB)).json()
    otps = {o["otpId"]: o for o in (await (await client.get("/_sim/otps")).json())["otps"]}
    # alice: her own defaults, the configured TTL (no merging with the global 900 s)
    assert len(otps[a["otpId"]]["pin"]) == 8
    assert otps[a["otpId"]]["ttl"] != 900
    assert otps[b["otpId"]]["ttl"] == 900
    # alice's SMS arrived at once (her network has no delay rule); bob's waits 30 s
    latest = await client.get("/_sim/messages/latest", params={"account": "alice"})
    assert (await latest.json())["otpId"] == a["otpId"]
    none = await client.get("/_sim/messages/latest", params={"account": "bob"})
    assert none.status == 404


async def test_sequences_count_per_account(client: Any) -> None:
    flaky = (
        "network:\n  rules:\n    - match: '*'\n      sequence: [{error: 500}, {deliver: true}]\n"
    )
    assert (await put(client, flaky)).status == 200
    assert (await put(client, flaky, "alice")).status == 200
    # Each network counts its own steps: alice's first request fails, so does bob's.
    await expect_error(await post_otp(client, ALICE), 500, "server_error", 1015)
    await expect_error(await post_otp(client, BOB), 500, "server_error", 1015)
    assert (await post_otp(client, ALICE)).status == 201
    assert (await post_otp(client, BOB)).status == 201


async def test_rate_limit_balance_and_fixed_pins_per_account(client: Any) -> None:
    own = """
network:
  rate_limit: {limit: 2, window: 60}
  balance: 0.05
  fixed_pins: [{match: "+33612345678", pin: "424242"}]
"""
    assert (await put(client, own, "alice")).status == 200
    first = await post_otp(client, ALICE)
    assert first.status == 201
    otp = (await first.json())["otpId"]
    message = await client.get("/_sim/messages/latest", params={"otpId": otp})
    assert (await message.json())["pin"] == "424242"
    # one SMS spent the 0.05 balance
    await expect_error(await post_otp(client, ALICE), 400, "insufficient_credit", 1113)
    await expect_error(await post_otp(client, ALICE), 429, "rate_limit", 1014)
    for _ in range(3):  # bob: the configured network (no limit, unlimited balance)
        resp = await post_otp(client, BOB)
        assert resp.status == 201
        otp = await (await client.get(f"/_sim/otps/{(await resp.json())['otpId']}")).json()
        assert otp["pin"] != "424242"


async def test_resetting_an_account_forgets_its_scenario(client: Any) -> None:
    assert (await put(client, DOWN, "alice")).status == 200
    assert (await client.post("/_sim/reset", params={"account": "bob"})).status == 200
    await expect_error(await post_otp(client, ALICE), 503, "server_error", 1016)
    assert (await client.post("/_sim/reset", params={"account": "alice"})).status == 200
    assert (await post_otp(client, ALICE)).status == 201
    mine = await (await client.get("/_sim/scenario", params={"account": "alice"})).json()
    assert (mine["active"], mine["own"]) == (False, False)


async def test_the_number_of_account_scenarios_and_clocks_is_bounded(
    make_client: Any,
) -> None:
    client = await make_client(max_account_scenarios=2)
    for account in ("a", "b"):
        assert (await put(client, DOWN, account)).status == 200
    assert (await put(client, DOWN, "a")).status == 200  # replacing one's own is fine
    body = await expect_error(await put(client, DOWN, "c"), 400, "invalid_param", 1040)
    assert "--max-account-scenarios" in body["message"]
    assert (await client.post("/_sim/reset", params={"account": "a"})).status == 200
    assert (await put(client, DOWN, "c")).status == 200
    # Clocks of their own are bounded by the same setting.
    for account in ("a", "b"):
        move = await client.post("/_sim/clock", json={"advance": 1}, params={"account": account})
        assert move.status == 200
    move = await client.post("/_sim/clock", json={"advance": 1}, params={"account": "c"})
    await expect_error(move, 400, "invalid_param", 1040)


async def test_an_accounts_scenario_clock_sets_its_own_clock(client: Any) -> None:
    shared = await (await client.get("/_sim/clock")).json()
    clocked = "network:\n  clock: {frozen: true, start: '2031-06-01T00:00:00Z'}\n"
    assert (await put(client, clocked, "alice")).status == 200
    mine = await (await client.get("/_sim/clock", params={"account": "alice"})).json()
    assert (mine["now"], mine["own"]) == ("2031-06-01T00:00:00.000Z", True)
    assert (await (await client.get("/_sim/clock")).json())["now"] == shared["now"]
    otp = await (await post_otp(client, ALICE)).json()
    stored = await (await client.get(f"/_sim/otps/{otp['otpId']}")).json()
    assert stored["dateCreated"] == "2031-06-01T00:00:00.000Z"


async def test_with_an_admin_token_an_account_may_set_itself_up_only(make_client: Any) -> None:
    client = await make_client(admin_token="s3cret-admin")
    admin = {"Authorization": "Bearer s3cret-admin"}
    await expect_error(await put(client, DOWN), 401, "unauthorized", 1024)
    await expect_error(await put(client, DOWN, **ALICE), 401, "unauthorized", 1024)
    await expect_error(await put(client, DOWN, "alice", **BOB), 401, "unauthorized", 1024)
    await expect_error(await put(client, DOWN, "alice"), 401, "unauthorized", 1024)
    assert (await put(client, DOWN, "alice", **ALICE)).status == 200
    assert (await put(client, DOWN, "bob", **admin)).status == 200
    reset = await client.post("/_sim/reset", params={"account": "alice"}, headers=ALICE)
    assert reset.status == 200
    await expect_error(
        await client.post("/_sim/reset", params={"account": "bob"}, headers=ALICE),
        401,
        "unauthorized",
        1024,
    )
    await expect_error(await client.post("/_sim/reset", headers=ALICE), 401, "unauthorized", 1024)
    # Reading everyone's messages still needs the admin token.
    await expect_error(
        await client.get("/_sim/messages", params={"account": "alice"}, headers=ALICE),
        401,
        "unauthorized",
        1024,
    )
    assert (await put(client, DOWN, **admin)).status == 200


async def test_an_accounts_endpoint_faults_reach_only_its_own_calls(client: Any) -> None:
    """Rules on verify/status/token (``on:``) follow the account's scenario too."""
    flaky = (
        "network:\n  rules:\n"
        "    - {match: '*', on: [verify, status], error: 503}\n"
        "    - {match: '*', on: token, error: 500}\n"
    )
    assert (await put(client, flaky, "alice")).status == 200
    a = await (await post_otp(client, ALICE)).json()
    b = await (await post_otp(client, BOB)).json()
    await expect_error(
        await client.get(f"/otp/{a['otpId']}", headers=ALICE), 503, "server_error", 1016
    )
    await expect_error(
        await client.post(f"/otp/{a['otpId']}", json={"pin": "000000"}, headers=ALICE),
        503,
        "server_error",
        1016,
    )
    assert (await client.get(f"/otp/{b['otpId']}", headers=BOB)).status == 200
    form = {"grant_type": "client_credentials"}
    for user, status in (("alice", 500), ("bob", 200)):
        basic = {"Authorization": "Basic " + base64.b64encode(f"{user}:pw".encode()).decode()}
        resp = await client.post("/oauth/token", data=form, headers=basic)
        assert resp.status == status, await resp.text()
