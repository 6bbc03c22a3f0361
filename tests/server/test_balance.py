"""Money: balances drawn down by each SMS's cost, GET /account/balance, the control API's
PUT /_sim/accounts/{account}/balance, a scenario's network.balance; and the free
GET /numbers/validate/{phoneNumber}."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from support import FR, KEY, expect_error, sim_of

from otpsim.config import Settings, load_settings

ACCOUNT = KEY["X-API-KEY"]


async def balance(client: Any, headers: dict[str, str] = KEY) -> dict[str, Any]:
    resp = await client.get("/account/balance", headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def post(client: Any, headers: dict[str, str] = KEY, **body: Any) -> Any:
    return await client.post("/otp", json={"phoneNumber": FR, **body}, headers=headers)


async def test_unlimited_by_default_billed_after_the_fact(client: Any) -> None:
    assert await balance(client) == {"balance": 0.0, "currency": "eur", "billing": "postpaid"}
    assert (await post(client)).status == 201
    assert await balance(client) == {"balance": -0.05, "currency": "eur", "billing": "postpaid"}


async def test_each_sms_draws_its_cost_until_the_credit_runs_out(make_client: Any) -> None:
    client = await make_client(Settings(balances=((None, 0.12),)))
    assert await balance(client) == {"balance": 0.12, "currency": "eur", "billing": "prepaid"}
    two_parts = "{{pin}} " + "x" * 160  # GSM-7, two parts: 0.10
    assert (await post(client, template=two_parts)).status == 201
    assert (await balance(client))["balance"] == pytest.approx(0.02)
    err = await expect_error(await post(client), 400, "insufficient_credit", 1113)
    assert "0.02" in err["message"]
    sim = sim_of(client)
    assert len(sim.list_otps()) == 1  # the refused one left nothing behind
    assert len(sim.messages()) == 1
    assert (await balance(client))["balance"] == pytest.approx(0.02)


async def test_a_refused_request_costs_nothing(make_client: Any) -> None:
    client = await make_client(Settings(balances=((None, 0.05),)))
    await expect_error(await post(client, ttl=5), 400, "invalid_param", 2008)
    await expect_error(await post(client, phoneNumber="+15005550005"), 500, "server_error", 1015)
    assert (await balance(client))["balance"] == 0.05
    assert (await post(client)).status == 201


async def test_balances_are_per_account(make_client: Any) -> None:
    client = await make_client(Settings(balances=((None, 1.0), ("poor", 0.0), ("vip", None))))
    await expect_error(await post(client, {"X-API-KEY": "poor"}), 400, "insufficient_credit", 1113)
    assert (await post(client, {"X-API-KEY": "vip"})).status == 201
    assert (await balance(client, {"X-API-KEY": "vip"}))["billing"] == "postpaid"
    assert (await post(client)).status == 201
    assert (await balance(client))["balance"] == pytest.approx(0.95)


async def test_the_control_api_sets_a_balance_until_the_next_reset(client: Any) -> None:
    resp = await client.put(f"/_sim/accounts/{ACCOUNT}/balance", json={"balance": 0.05})
    assert resp.status == 200
    assert await resp.json() == {"balance": 0.05, "currency": "eur", "billing": "prepaid"}
    assert (await post(client)).status == 201
    await expect_error(await post(client), 400, "insufficient_credit", 1113)
    resp = await client.get(f"/_sim/accounts/{ACCOUNT}/balance")
    assert (await resp.json())["balance"] == 0.0
    resp = await client.put(f"/_sim/accounts/{ACCOUNT}/balance", json={"balance": None})
    assert (await resp.json())["billing"] == "postpaid"
    assert (await post(client)).status == 201
    await client.put(f"/_sim/accounts/{ACCOUNT}/balance", json={"balance": 0})
    assert (await client.post("/_sim/reset")).status == 200
    assert (await balance(client))["billing"] == "postpaid"  # back to the configured default


@pytest.mark.parametrize("body", [{}, {"balance": -1}, {"balance": "5"}, {"balance": True},
                                  {"balance": 1e13}])  # fmt: skip
async def test_a_bad_balance_is_refused_clearly(client: Any, body: dict[str, Any]) -> None:
    resp = await client.put(f"/_sim/accounts/{ACCOUNT}/balance", json=body)
    err = await expect_error(resp, 400, "invalid_param", 1020)
    assert "'balance' must be a number" in err["message"]
    assert (await balance(client))["billing"] == "postpaid"


async def test_a_scenario_sets_every_accounts_starting_balance(client: Any) -> None:
    resp = await client.put("/_sim/scenario", data="network:\n  balance: 0.05\n")
    assert resp.status == 200
    assert (await resp.json())["network"]["balance"] == 0.05
    assert (await post(client)).status == 201
    await expect_error(await post(client), 400, "insufficient_credit", 1113)
    assert (await client.delete("/_sim/scenario")).status == 200
    assert (await post(client)).status == 201  # unlimited again


async def test_a_token_needs_the_account_scope_for_the_balance(client: Any) -> None:
    resp = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "otp"},
        headers={"Authorization": "Basic " + base64.b64encode(b"app:secret").decode()},
    )
    token = (await resp.json())["access_token"]
    resp = await client.get("/account/balance", headers={"Authorization": f"Bearer {token}"})
    err = await expect_error(resp, 403, "insufficient_scope", 1004)
    assert "'account'" in err["message"]
    resp = await client.get(f"/numbers/validate/{FR}", headers={"Authorization": f"Bearer {token}"})
    err = await expect_error(resp, 403, "insufficient_scope", 1004)
    assert "'numbers'" in err["message"]
    await expect_error(await client.get("/account/balance"), 401, "invalid_api_key", 1001)


def test_balance_settings_parse_with_clear_errors() -> None:
    settings = load_settings(cli={}, env={"OTPSIM_BALANCE": "10,poor:0,vip:unlimited"})
    assert settings.default_balance == 10.0
    assert settings.account_balances == {"poor": 0.0, "vip": None}
    from otpsim.errors import OtpsimError

    with pytest.raises(OtpsimError, match="OTPSIM_BALANCE: expected AMOUNT or ACCOUNT:AMOUNT"):
        load_settings(cli={}, env={"OTPSIM_BALANCE": "lots"})
    with pytest.raises(OtpsimError, match="OTPSIM_NO_COVERAGE: expected an ISO-3166 alpha-2"):
        load_settings(cli={}, env={"OTPSIM_NO_COVERAGE": "France"})


# -- GET /numbers/validate/{phoneNumber} ---------------------------------------------------


@pytest.mark.parametrize("form", ["+33612345678", "33612345678", "%2B33612345678"])
async def test_validate_a_number_in_each_accepted_form(client: Any, form: str) -> None:
    resp = await client.get(f"/numbers/validate/{form}", headers=KEY)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {
        "data": {
            "phoneNumber": FR,
            "countryIso": "FR",
            "networkOperator": "SFR",
            "timezone": "Europe/Paris",
        }
    }


async def test_validate_is_free_and_ignores_coverage(make_client: Any) -> None:
    client = await make_client(Settings(balances=((None, 0.0),), no_coverage=("FR",)))
    resp = await client.get(f"/numbers/validate/{FR}", headers=KEY)
    assert resp.status == 200
    assert (await balance(client))["balance"] == 0.0


@pytest.mark.parametrize("bad", ["+3361", "hello", "+1" + "9" * 80])
async def test_validate_an_invalid_number_is_1207(client: Any, bad: str) -> None:
    resp = await client.get(f"/numbers/validate/{bad}", headers=KEY)
    await expect_error(resp, 400, "invalid_param", 1207)


async def test_validate_a_non_geographic_number_is_no_coverage(client: Any) -> None:
    resp = await client.get("/numbers/validate/+870773111632", headers=KEY)
    await expect_error(resp, 403, "no_coverage", 1119)


async def test_a_bad_scenario_balance_names_file_line_and_key(client: Any) -> None:
    resp = await client.put("/_sim/scenario", data="network:\n  balance: lots\n")
    err = await expect_error(resp, 400, "invalid_scenario", 1023)
    assert ":2: network.balance: expected a number from 0 to 1e+12" in err["message"]
