"""Carrier rules as API users see them: each magic number, scenarios on a running server."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from support import KEY, expect_error, sim_of

SCENARIO = """
network:
  rules:
    - match: "+33612345678"
      error: 503
"""


async def post(client: Any, phone: str) -> Any:
    return await client.post("/otp", json={"phoneNumber": phone}, headers=KEY)


@pytest.mark.parametrize(
    ("phone", "status", "type_", "code"),
    [
        ("+15005550001", 400, "invalid_param", 2020),
        ("+15005550005", 500, "server_error", 1015),
        ("+15005550006", 503, "server_error", 1016),
        ("+15005550007", 429, "rate_limit", 1014),
    ],
)
async def test_magic_numbers_that_refuse(
    client: Any, phone: str, status: int, type_: str, code: int
) -> None:
    err = await expect_error(await post(client, phone), status, type_, code)
    assert f"simulated by the carrier rule for {phone}" in err["message"]
    assert sim_of(client).list_otps() == []


async def test_magic_rate_limit_has_the_429_headers(client: Any) -> None:
    resp = await post(client, "+15005550007")
    assert resp.headers["X-Rate-Limit-Remaining"] == "0"
    assert int(resp.headers["X-Rate-Limit-Reset"]) >= sim_of(client).now()


async def test_magic_never_delivered_and_delayed(client: Any) -> None:
    lost = await (await post(client, "+15005550002")).json()
    late = await (await post(client, "+15005550003")).json()
    sim = sim_of(client)
    assert sim.messages(otp_id=lost["otpId"])[0].status == "UNDELIVERED"
    assert sim.messages(otp_id=late["otpId"])[0].status == "QUEUED"
    sim.move_clock(advance=30)
    await asyncio.sleep(0.05)  # the carrier task delivers when the clock gets there
    assert sim.messages(otp_id=late["otpId"])[0].status == "DELIVERED"
    assert sim.latest_message(otp_id=lost["otpId"]) is None


async def test_magic_500_twice_then_delivered(client: Any) -> None:
    statuses = [(await post(client, "+15005550008")).status for _ in range(3)]
    assert statuses == [500, 500, 201]


async def test_magic_latency(client: Any) -> None:
    started = time.monotonic()
    resp = await post(client, "+15005550009")
    assert resp.status == 201
    assert time.monotonic() - started >= 1.9


async def test_scenario_put_get_delete_on_a_running_server(client: Any) -> None:
    assert (await (await client.get("/_sim/scenario")).json())["active"] is False
    resp = await client.put("/_sim/scenario", data=SCENARIO)
    assert resp.status == 200
    body = await resp.json()
    assert body["active"] is True
    assert body["network"]["rules"] == [{"match": "+33612345678", "action": "error", "status": 503}]
    await expect_error(await post(client, "+33612345678"), 503, "server_error", 1016)

    # Hot swap: a JSON body replaces it at once.
    swap = {"name": "late", "network": {"rules": [{"match": "+33612345678", "delay": 60}]}}
    resp = await client.put(
        "/_sim/scenario", data=json.dumps(swap), headers={"Content-Type": "application/json"}
    )
    assert (await resp.json())["name"] == "late"
    created = await post(client, "+33612345678")
    assert created.status == 201
    otp_id = (await created.json())["otpId"]
    assert sim_of(client).messages(otp_id=otp_id)[0].status == "QUEUED"

    assert (await client.delete("/_sim/scenario")).status == 200
    assert (await post(client, "+33612345678")).status == 201
    assert (await (await client.get("/_sim/scenario")).json())["active"] is False


async def test_a_rejected_scenario_keeps_the_previous_one(client: Any) -> None:
    await client.put("/_sim/scenario", data=SCENARIO)
    bad = "network:\n  rules:\n    - match: '+33612345678'\n      error: 418\n"
    err = await expect_error(
        await client.put("/_sim/scenario", data=bad), 400, "invalid_scenario", 1023
    )
    assert (
        err["message"] == "<request body>:4: network.rules[0].error: expected one of 400, 401, "
        "403, 404, 429, 500, 503, got 418"
    )
    assert (await (await client.get("/_sim/scenario")).json())["active"] is True
    assert (await post(client, "+33612345678")).status == 503


async def test_scenario_defaults_clock_and_rate_limit(client: Any) -> None:
    text = """
network:
  clock: {frozen: true, start: "2031-02-03T04:05:06Z"}
  defaults: {ttl: 90, pinType: letters, pinLength: 5}
  rate_limit: {limit: 2, window: 10}
"""
    assert (await client.put("/_sim/scenario", data=text)).status == 200
    clock = await (await client.get("/_sim/clock")).json()
    assert clock["now"] == "2031-02-03T04:05:06.000Z"
    otp = await (await post(client, "+33612345678")).json()
    assert otp["ttl"] == 90
    assert sim_of(client).get_otp(otp["otpId"]).pin.isalpha()
    assert (await post(client, "+33612345678")).status == 201
    assert (await post(client, "+33612345678")).status == 429
    await client.delete("/_sim/scenario")
    assert (await post(client, "+33612345678")).status == 201  # the rate limit is off again
    otp = await (await post(client, "+33612345678")).json()
    assert otp["ttl"] == 300


async def test_scenario_without_network_is_refused(client: Any) -> None:
    resp = await client.put("/_sim/scenario", data="steps:\n  - advance: 5\n")
    await expect_error(resp, 400, "invalid_scenario", 1023)


async def test_reset_keeps_the_scenario_and_its_clock(client: Any) -> None:
    text = 'network:\n  clock: {frozen: true, start: "2031-02-03T04:05:06Z"}\n'
    await client.put("/_sim/scenario", data=text)
    await client.post("/_sim/clock", json={"advance": 100, "freeze": False})
    await client.post("/_sim/reset")
    clock = await (await client.get("/_sim/clock")).json()
    assert clock["now"] == "2031-02-03T04:05:06.000Z"
    assert clock["frozen"] is True
    assert (await (await client.get("/_sim/scenario")).json())["active"] is True
