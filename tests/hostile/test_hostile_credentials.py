"""Per-credential state stays bounded: credentials have a maximum length, reads create
no per-account state, and the rate limiter's table has a cap (issue: round 2, edge2
item 3)."""

from __future__ import annotations

import base64
from typing import Any

from support import FR, expect_error, sim_of

from otpsim.clock import Clock
from otpsim.engine import MAX_CREDENTIAL
from otpsim.engine.ratelimit import RateLimiter

LONG = "k" * (MAX_CREDENTIAL + 1)


def basic(client_id: str, secret: str = "x") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def test_credentials_have_a_maximum_length(client: Any) -> None:
    assert MAX_CREDENTIAL == 256
    ok = await client.get("/account/balance", headers={"X-API-KEY": "k" * MAX_CREDENTIAL})
    assert ok.status == 200
    resp = await client.get("/account/balance", headers={"X-API-KEY": LONG})
    err = await expect_error(resp, 401, "invalid_api_key", 1002)
    assert "256" in err["message"]
    resp = await client.post("/otp", json={"phoneNumber": FR}, headers={"X-API-KEY": LONG})
    await expect_error(resp, 401, "invalid_api_key", 1002)
    resp = await client.get("/account/balance", headers={"Authorization": f"Bearer {LONG}"})
    await expect_error(resp, 401, "invalid_client", 1003)
    resp = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(LONG)
    )
    await expect_error(resp, 401, "invalid_client", 1600)
    sim = sim_of(client)
    assert sim.live_tokens() == 0
    assert sim.list_otps(limit=10) == []


async def test_account_names_in_control_paths_have_a_maximum_length(client: Any) -> None:
    resp = await client.get(f"/_sim/accounts/{LONG}/balance")
    err = await expect_error(resp, 400, "invalid_param", 1020)
    assert "256" in err["message"]
    resp = await client.put(f"/_sim/accounts/{LONG}/balance", json={"balance": 1})
    await expect_error(resp, 400, "invalid_param", 1020)
    assert (await client.get(f"/_sim/accounts/{'a' * MAX_CREDENTIAL}/balance")).status == 200


async def test_reading_balances_creates_no_account(client: Any) -> None:
    sim = sim_of(client)
    for i in range(50):
        assert (await client.get(f"/_sim/accounts/reader-{i}/balance")).status == 200
        resp = await client.get("/account/balance", headers={"X-API-KEY": f"key-{i}"})
        assert (await resp.json())["billing"] == "postpaid"
    assert sim.accounts_with_balance() == 0
    # What is set or spent is kept.
    await client.put("/_sim/accounts/paid/balance", json={"balance": 1.5})
    assert (await (await client.get("/_sim/accounts/paid/balance")).json())["balance"] == 1.5
    assert sim.accounts_with_balance() == 1


def test_the_rate_limiter_table_is_bounded_on_a_frozen_clock() -> None:
    limiter = RateLimiter(Clock(start=0.0, frozen=True), limit=3, window=60, max_keys=100)
    for i in range(1_000):
        limiter.hit(f"account:{i}")
        assert len(limiter) <= 100
    # A credential in use keeps its count while others come and go.
    for i in range(3):
        assert limiter.hit("busy").allowed
        for j in range(50):
            limiter.hit(f"other:{i}:{j}")
    assert not limiter.hit("busy").allowed
