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
