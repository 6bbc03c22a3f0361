"""Hostile use of per-account scenarios and clocks: names and numbers are bounded."""

from __future__ import annotations

from typing import Any

from support import FR, expect_error

DOWN = "network:\n  rules:\n    - {match: '*', error: 503}\n"


async def test_an_account_name_longer_than_a_credential_is_refused(client: Any) -> None:
    long = {"account": "k" * 257}
    await expect_error(
        await client.put("/_sim/scenario", data=DOWN, params=long), 400, "invalid_param", 1020
    )
    await expect_error(
        await client.post("/_sim/clock", json={"advance": 1}, params=long),
        400,
        "invalid_param",
        1020,
    )


async def test_a_flood_of_accounts_cannot_grow_views_beyond_the_bound(make_client: Any) -> None:
    client = await make_client(max_account_scenarios=5)
    refused = 0
    for i in range(50):
        params = {"account": f"flood-{i}"}
        clock = await client.post("/_sim/clock", json={"advance": 60}, params=params)
        scenario = await client.put("/_sim/scenario", data=DOWN, params=params)
        refused += (clock.status == 400) + (scenario.status == 400)
    assert refused == 2 * 45
    # Everyone else is served as usual, on the shared clock and network.
    resp = await client.post("/otp", json={"phoneNumber": FR}, headers={"X-API-KEY": "bystander"})
    assert resp.status == 201
    shared = await (await client.get("/_sim/clock", params={"account": "bystander"})).json()
    assert shared["own"] is False


def _rules(n: int) -> str:
    rules = "".join(f"    - {{match: '+3361234{i:04d}', error: 503}}\n" for i in range(n))
    return "network:\n  rules:\n" + rules


async def test_account_scenarios_share_a_budget_of_rules(make_client: Any) -> None:
    client = await make_client(max_account_rules=10)
    put = client.put
    assert (await put("/_sim/scenario", data=_rules(6), params={"account": "a"})).status == 200
    resp = await put("/_sim/scenario", data=_rules(5), params={"account": "b"})
    await expect_error(resp, 400, "invalid_param", 1040)
    assert "--max-account-rules" in (await resp.json())["error"]["message"]
    # b has no scenario of its own: nothing changed.
    assert (await (await client.get("/_sim/scenario", params={"account": "b"})).json())[
        "own"
    ] is False
    # Replacing a's own frees its old rules; what is left is b's to take.
    assert (await put("/_sim/scenario", data=_rules(2), params={"account": "a"})).status == 200
    assert (await put("/_sim/scenario", data=_rules(8), params={"account": "b"})).status == 200
    resp = await put("/_sim/scenario", data=_rules(1), params={"account": "c"})
    await expect_error(resp, 400, "invalid_param", 1040)
    # Forgetting one (DELETE, or a reset of the account) gives its rules back.
    assert (await client.delete("/_sim/scenario", params={"account": "b"})).status == 200
    assert (await put("/_sim/scenario", data=_rules(8), params={"account": "c"})).status == 200
    assert (await client.post("/_sim/reset", params={"account": "c"})).status == 200
    assert (await put("/_sim/scenario", data=_rules(8), params={"account": "d"})).status == 200
    # The global scenario is not an account's: it is bounded by its file's size alone.
    assert (await put("/_sim/scenario", data=_rules(20))).status == 200


async def test_no_account_clock_passes_9999_12_31(client: Any) -> None:
    late = {"account": "late"}
    resp = await client.post("/_sim/clock", json={"set": "9999-12-31T00:00:00Z"}, params=late)
    assert resp.status == 200, await resp.text()
    resp = await client.post("/_sim/clock", json={"advance": 86400 * 2}, params=late)
    await expect_error(resp, 400, "invalid_param", 1020)
    # A global move would push the late view past the bound: refused, nothing moves.
    before = (await (await client.get("/_sim/clock")).json())["timestamp"]
    resp = await client.post("/_sim/clock", json={"advance": 86400 * 2})
    await expect_error(resp, 400, "invalid_param", 1020)
    assert "late" in (await resp.json())["error"]["message"]
    after = (await (await client.get("/_sim/clock")).json())["timestamp"]
    assert after - before < 60
    view = await (await client.get("/_sim/clock", params=late)).json()
    assert view["now"].startswith("9999-12-31")
    # Nor before 1970: a view far behind holds a global move back too.
    early = {"account": "early"}
    resp = await client.post("/_sim/clock", json={"set": "1970-01-02T00:00:00Z"}, params=early)
    assert resp.status == 200, await resp.text()
    resp = await client.post("/_sim/clock", json={"advance": -86400 * 3})
    await expect_error(resp, 400, "invalid_param", 1020)
    # A move within the bounds for everyone is fine.
    assert (await client.post("/_sim/clock", json={"advance": 3600})).status == 200


async def test_a_global_scenario_clock_cannot_push_an_account_clock_past_9999(
    client: Any,
) -> None:
    late = {"account": "late"}
    resp = await client.post("/_sim/clock", json={"set": "9999-12-30T00:00:00Z"}, params=late)
    assert resp.status == 200, await resp.text()
    # The shared clock is 2030; a global scenario starting 2040 would move "late" 10
    # years on: refused, and the scenario in force stays as it was.
    far = "network:\n  clock: {start: '2040-01-01T00:00:00Z'}\n  rules: []\n"
    resp = await client.put("/_sim/scenario", data=far)
    await expect_error(resp, 400, "invalid_param", 1020)
    assert (await (await client.get("/_sim/scenario")).json())["active"] is False
