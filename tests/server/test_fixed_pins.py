"""Fixed PINs for test numbers (--fixed-pin, network.fixed_pins), and seeded PIN sequences."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support import FR, KEY, create, expect_error, pin_of

from otpsim.config import Settings
from otpsim.server.app import create_app

QA_NUMBERS = Settings(
    fixed_pins=(
        ("+33612345678", "975310"),
        ("+447911*", "000000"),
        (r"re:^\+1202555\d{4}$", "ABCD12"),
    )
)


async def verify(client: TestClient[Any, Any], otp_id: str, pin: str) -> int:
    resp = await client.post(f"/otp/{otp_id}", json={"pin": pin}, headers=KEY)
    return resp.status


async def test_a_test_number_always_gets_its_fixed_pin(make_client: Any) -> None:
    client = await make_client(QA_NUMBERS)
    for _ in range(2):
        otp = await create(client, phoneNumber=FR)
        assert await pin_of(client, otp["otpId"]) == "975310"
    assert await verify(client, otp["otpId"], "975310") == 200
    prefix = await create(client, phoneNumber="+447911123456")
    assert await pin_of(client, prefix["otpId"]) == "000000"
    pattern = await create(client, phoneNumber="+12025550123", pinType="alphanumeric")
    assert await pin_of(client, pattern["otpId"]) == "ABCD12"
    other = await create(client, phoneNumber="+33699999999")
    assert await pin_of(client, other["otpId"]) != "975310"  # random as usual (seeded 7)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"pinLength": 4}, "its pinLength is 4"),
        ({"pinType": "letters"}, "its pinType is letters"),
        ({"pinType": "letters", "pinLength": 8}, "its pinLength is 8 and its pinType is letters"),
    ],
)
async def test_a_fixed_pin_that_does_not_fit_the_request_is_a_clear_error(
    make_client: Any, body: dict[str, Any], why: str
) -> None:
    client = await make_client(QA_NUMBERS)
    resp = await client.post("/otp", json={"phoneNumber": FR, **body}, headers=KEY)
    error = await expect_error(resp, 400, "invalid_param", 1035)
    assert why in error["message"]
    assert "--fixed-pin" in error["message"]
    assert "975310" not in error["message"]  # the PIN stays out of provider answers
    nothing = await client.get("/_sim/messages")
    assert (await nothing.json())["messages"] == []  # a refused request leaves no trace


async def test_a_scenario_sets_fixed_pins_and_wins_over_the_settings(make_client: Any) -> None:
    client = await make_client(QA_NUMBERS)
    scenario = (
        "network:\n  fixed_pins:\n"
        "    - {match: '+33612345678', pin: '654321'}\n"
        "    - {match: {regex: '^\\+3361111'}, pin: 'QWERTY'}\n"
    )
    resp = await client.put("/_sim/scenario", data=scenario)
    assert resp.status == 200, await resp.text()
    shown = (await resp.json())["network"]["fixedPins"]
    assert shown == [
        {"match": "+33612345678", "pin": "654321"},
        {"match": "re:^\\+3361111", "pin": "QWERTY"},
    ]
    otp = await create(client, phoneNumber=FR)
    assert await pin_of(client, otp["otpId"]) == "654321"
    letters = await create(client, phoneNumber="+33611112222", pinType="letters")
    assert await pin_of(client, letters["otpId"]) == "QWERTY"
    prefix = await create(client, phoneNumber="+447911123456")
    assert await pin_of(client, prefix["otpId"]) == "000000"  # the settings still apply
    await client.delete("/_sim/scenario")
    otp = await create(client, phoneNumber=FR)
    assert await pin_of(client, otp["otpId"]) == "975310"


async def pins_and_ids(aiohttp_client: Any, settings: Settings, phones: list[str]) -> list[Any]:
    client = await aiohttp_client(create_app(settings))  # no rng given: the seed decides
    seen = []
    for phone in phones:
        otp = await create(client, phoneNumber=phone)
        seen.append((otp["otpId"], await pin_of(client, otp["otpId"])))
    return seen


async def test_a_seed_gives_the_same_pins_and_ids_every_run(aiohttp_client: Any) -> None:
    phones = ["+33611111111", FR, "+33622222222", "+33611111111"]
    first = await pins_and_ids(aiohttp_client, Settings(seed=42), phones)
    again = await pins_and_ids(aiohttp_client, Settings(seed=42), phones)
    other = await pins_and_ids(aiohttp_client, Settings(seed=43), phones)
    assert first == again
    assert [pin for _, pin in first] != [pin for _, pin in other]
    unseeded = await pins_and_ids(aiohttp_client, Settings(), phones)
    assert unseeded != first
    # A fixed PIN for one number does not shift the seeded PINs of the others.
    fixed = await pins_and_ids(
        aiohttp_client, Settings(seed=42, fixed_pins=((FR, "975310"),)), phones
    )
    assert fixed[1][1] == "975310"
    assert [p for i, (_, p) in enumerate(fixed) if i != 1] == [
        p for i, (_, p) in enumerate(first) if i != 1
    ]
