"""Authentication in lenient and strict modes, OAuth client credentials and scopes."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from support import FR, expect_error, sim_of

from otpsim.config import Settings

BODY = {"phoneNumber": FR}


def basic(client_id: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def token_for(client: Any, client_id: str, secret: str, **form: str) -> Any:
    data = {"grant_type": "client_credentials", **form}
    return await client.post("/oauth/token", data=data, headers=basic(client_id, secret))


# -- lenient (default) ----------------------------------------------------------------


async def test_no_credentials_is_401(client: Any) -> None:
    await expect_error(await client.post("/otp", json=BODY), 401, "invalid_api_key", 1001)
    await expect_error(
        await client.post("/otp", json=BODY, headers={"Authorization": "Basic eDp5"}),
        401, "invalid_api_key", 1001,
    )  # fmt: skip


async def test_lenient_accepts_any_key_and_any_bearer(client: Any) -> None:
    assert (await client.post("/otp", json=BODY, headers={"X-API-KEY": "anything"})).status == 201
    bearer = {"Authorization": "Bearer whatever"}
    assert (await client.post("/otp", json=BODY, headers=bearer)).status == 201


async def test_empty_api_key_is_refused(client: Any) -> None:
    resp = await client.post("/otp", json=BODY, headers={"X-API-KEY": " "})
    await expect_error(resp, 401, "invalid_api_key", 1002)


async def test_each_credential_is_its_own_account(client: Any) -> None:
    await client.post("/otp", json=BODY, headers={"X-API-KEY": "alpha"})
    await client.post("/otp", json=BODY, headers={"Authorization": "Bearer beta"})
    accounts = [m.account for m in sim_of(client).messages()]
    assert accounts == ["beta", "alpha"]


async def test_lenient_token_for_any_client(client: Any) -> None:
    resp = await token_for(client, "my-app", "anything")
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"access_token", "expires_in", "scope", "token_type"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 86400
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await client.post("/otp", json=BODY, headers=headers)).status == 201
    assert sim_of(client).messages()[0].account == "my-app"


# -- strict ---------------------------------------------------------------------------

STRICT = Settings(api_keys=("k1", "k2"), oauth_clients=(("app", "s3cret"),), token_ttl=3600)


@pytest.fixture
async def strict(make_client: Any) -> Any:
    return await make_client(STRICT)


async def test_strict_accepts_only_configured_keys(strict: Any) -> None:
    assert (await strict.post("/otp", json=BODY, headers={"X-API-KEY": "k2"})).status == 201
    resp = await strict.post("/otp", json=BODY, headers={"X-API-KEY": "k3"})
    await expect_error(resp, 401, "invalid_api_key", 1002)


async def test_strict_refuses_unknown_bearer(strict: Any) -> None:
    resp = await strict.post("/otp", json=BODY, headers={"Authorization": "Bearer made-up"})
    await expect_error(resp, 401, "invalid_client", 1003)


async def test_strict_oauth_flow_and_expiry(strict: Any) -> None:
    resp = await token_for(strict, "app", "s3cret", scope="otp sms")
    assert resp.status == 200
    body = await resp.json()
    assert body["expires_in"] == 3600
    assert body["scope"] == "sms otp"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await strict.post("/otp", json=BODY, headers=headers)).status == 201
    sim_of(strict).move_clock(advance=3600)
    resp = await strict.post("/otp", json=BODY, headers=headers)
    await expect_error(resp, 401, "invalid_client", 1003)


async def test_strict_wrong_secret_or_unknown_client(strict: Any) -> None:
    await expect_error(await token_for(strict, "app", "wrong"), 401, "invalid_client", 1600)
    await expect_error(await token_for(strict, "other", "s3cret"), 401, "invalid_client", 1600)


async def test_token_without_basic_auth_is_invalid_client(client: Any) -> None:
    resp = await client.post("/oauth/token", data={"grant_type": "client_credentials"})
    await expect_error(resp, 401, "invalid_client", 1600)


async def test_grant_type_missing_is_invalid_request(client: Any) -> None:
    resp = await client.post("/oauth/token", data={}, headers=basic("a", "b"))
    await expect_error(resp, 400, "invalid_request", 1600)


async def test_other_grant_type_is_unsupported(client: Any) -> None:
    resp = await client.post(
        "/oauth/token", data={"grant_type": "password"}, headers=basic("a", "b")
    )
    await expect_error(resp, 400, "unsupported_grant_type", 1600)


async def test_unknown_scope_is_invalid_scope(client: Any) -> None:
    await expect_error(
        await token_for(client, "a", "b", scope="otp telepathy"), 400, "invalid_scope", 1600
    )


async def test_token_without_otp_scope_is_403(client: Any) -> None:
    body = await (await token_for(client, "a", "b", scope="sms")).json()
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    resp = await client.post("/otp", json=BODY, headers=headers)
    await expect_error(resp, 403, "insufficient_scope", 1004)
