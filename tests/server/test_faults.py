"""Scenario rules on every provider endpoint (``on:``), and connection-level faults.

Each endpoint x (an error status, a sequence, seeded chance), each connection fault as a
real client sees it (aiohttp's ClientSession), what a fault leaves in the store, and
that a fault on one client's request leaves the others alone.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from support import FR, KEY, create, expect_error, pin_of, sim_of

from otpsim.config import Settings

Client = TestClient[Any, Any]
OTHER = "+33698765432"
BASIC = {"Authorization": "Basic " + base64.b64encode(b"app:secret").decode()}
GRANT = {"grant_type": "client_credentials"}


async def use(client: Client, *rules: dict[str, Any], seed: int | None = None) -> None:
    """Activate a scenario of these rules (JSON, as PUT /_sim/scenario takes it)."""
    network: dict[str, Any] = {"rules": list(rules)}
    if seed is not None:
        network["seed"] = seed
    resp = await client.put(
        "/_sim/scenario",
        data=json.dumps({"name": "faults", "network": network}),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 200, await resp.text()


Call = Callable[[Client, str], Awaitable[aiohttp.ClientResponse]]


async def do_verify(client: Client, otp_id: str) -> aiohttp.ClientResponse:
    pin = await pin_of(client, otp_id)
    return await client.post(f"/otp/{otp_id}", json={"pin": pin}, headers=KEY)


async def do_status(client: Client, otp_id: str) -> aiohttp.ClientResponse:
    return await client.get(f"/otp/{otp_id}", headers=KEY)


async def do_cancel(client: Client, otp_id: str) -> aiohttp.ClientResponse:
    return await client.delete(f"/otp/{otp_id}", headers=KEY)


async def do_token(client: Client, otp_id: str) -> aiohttp.ClientResponse:
    return await client.post("/oauth/token", data=GRANT, headers=BASIC)


async def do_create(client: Client, otp_id: str) -> aiohttp.ClientResponse:
    return await client.post("/otp", json={"phoneNumber": FR}, headers=KEY)


CALLS: dict[str, Call] = {
    "create": do_create,
    "verify": do_verify,
    "status": do_status,
    "cancel": do_cancel,
    "token": do_token,
}
OK = {"create": 201, "verify": 200, "status": 200, "cancel": 200, "token": 200}


def match_for(endpoint: str) -> str:
    return "app" if endpoint == "token" else FR


async def subject(client: Client, endpoint: str) -> str:
    """An OTP for FR, created before the rules apply (it is what verify etc. act on)."""
    return "" if endpoint in ("create", "token") else (await create(client))["otpId"]


# (status, endpoint) -> (type, code): the table in docs/scenarios.md.
def expected_error(status: int, endpoint: str) -> tuple[str, int]:
    token = endpoint == "token"
    return {
        400: ("invalid_request", 1600 if token else 1038),
        401: ("invalid_client", 1600) if token else ("invalid_api_key", 1002),
        403: ("access_denied", 1039),
        404: ("not_found", 1010 if endpoint in ("create", "token") else 2021),
        429: ("rate_limit", 1014),
        500: ("server_error", 1015),
        503: ("server_error", 1016),
    }[status]


@pytest.fixture
async def oauth(make_client: Any) -> Client:
    settings = Settings(api_keys=("test-key",), oauth_clients=(("app", "secret"),))
    return await make_client(settings)  # type: ignore[no-any-return]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 503])
@pytest.mark.parametrize("endpoint", list(CALLS))
async def test_an_error_status_on_each_endpoint(oauth: Client, endpoint: str, status: int) -> None:
    otp_id = await subject(oauth, endpoint)
    await use(oauth, {"match": match_for(endpoint), "on": endpoint, "error": status})
    resp = await CALLS[endpoint](oauth, otp_id)
    err = await expect_error(resp, status, *expected_error(status, endpoint))
    assert "simulated by the carrier rule" in err["message"]
    if status == 429:
        assert resp.headers["Retry-After"] == "1"
        assert resp.headers["X-Rate-Limit-Remaining"] == "0"
        assert "X-Rate-Limit-Reset" in resp.headers


@pytest.mark.parametrize("endpoint", list(CALLS))
async def test_a_sequence_on_each_endpoint_fails_then_answers(oauth: Client, endpoint: str) -> None:
    otp_id = await subject(oauth, endpoint)
    sequence = [{"error": 503}, {"error": 500}, {"ok": True}]
    await use(oauth, {"match": match_for(endpoint), "on": [endpoint], "sequence": sequence})
    await expect_error(await CALLS[endpoint](oauth, otp_id), 503, "server_error", 1016)
    await expect_error(await CALLS[endpoint](oauth, otp_id), 500, "server_error", 1015)
    assert (await CALLS[endpoint](oauth, otp_id)).status == OK[endpoint]


@pytest.mark.parametrize("endpoint", ["create", "status", "token"])
async def test_chance_is_the_same_for_the_same_seed(oauth: Client, endpoint: str) -> None:
    otp_id = await subject(oauth, endpoint)
    rule = {"match": "*", "on": endpoint, "chance": 0.5, "error": 503}

    async def run() -> list[int]:
        await use(oauth, rule, seed=42)  # activating restarts the seeded draws
        return [(await CALLS[endpoint](oauth, otp_id)).status for _ in range(16)]

    first, second = await run(), await run()
    assert first == second
    assert set(first) == {OK[endpoint], 503}  # some of each


async def test_a_verify_fault_consumes_no_attempt_and_changes_nothing(client: Client) -> None:
    otp = await create(client, maxAttempts=1)
    await use(client, {"match": FR, "on": "verify", "sequence": [{"error": 500}, {"ok": True}]})
    await expect_error(await do_verify(client, otp["otpId"]), 500, "server_error", 1015)
    stored = sim_of(client).get_otp(otp["otpId"])
    assert (stored.status.value, stored.attempts, stored.history) == ("PENDING", 0, None)
    resp = await do_verify(client, otp["otpId"])  # the one attempt is still there
    assert (await resp.json()) == {"status": "VERIFIED"}


async def test_a_429_rule_may_set_its_retry_after(client: Client) -> None:
    otp = await create(client)
    await use(client, {"match": "*", "on": "cancel", "error": 429, "retry_after": 30})
    resp = await do_cancel(client, otp["otpId"])
    await expect_error(resp, 429, "rate_limit", 1014)
    assert resp.headers["Retry-After"] == "30"
    rules = (await (await client.get("/_sim/scenario")).json())["network"]["rules"]
    assert rules[0]["retry_after"] == 30


async def test_verify_rules_match_the_otps_number(client: Client) -> None:
    mine = await create(client)
    other = await create(client, phoneNumber=OTHER)
    await use(client, {"match": OTHER, "on": ["verify", "status"], "error": 503})
    assert (await do_status(client, mine["otpId"])).status == 200
    await expect_error(await do_status(client, other["otpId"]), 503, "server_error", 1016)
    assert (await do_verify(client, mine["otpId"])).status == 200
    # Create is not targeted: the number still gets OTPs.
    assert (await client.post("/otp", json={"phoneNumber": OTHER}, headers=KEY)).status == 201


async def test_an_unknown_otp_meets_only_rules_for_every_number(client: Client) -> None:
    unknown = "0b5b4f3e-0000-4000-8000-000000000000"
    await use(client, {"match": FR, "on": "status", "error": 503})
    await expect_error(await do_status(client, unknown), 404, "not_found", 2021)
    await use(client, {"match": "*", "on": "status", "error": 503})
    await expect_error(await do_status(client, unknown), 503, "server_error", 1016)


async def test_token_rules_match_the_client_id(make_client: Any) -> None:
    client = await make_client(Settings(oauth_clients=(("app", "secret"), ("other", "pw"))))
    await use(client, {"match": "app", "on": "token", "error": 401})
    await expect_error(await do_token(client, ""), 401, "invalid_client", 1600)
    other = {"Authorization": "Basic " + base64.b64encode(b"other:pw").decode()}
    assert (await client.post("/oauth/token", data=GRANT, headers=other)).status == 200


async def test_a_wrong_secret_is_refused_before_token_rules_and_consumes_nothing(
    oauth: Client,
) -> None:
    await use(oauth, {"match": "app", "on": "token", "sequence": [{"error": 503}, {"ok": True}]})
    wrong = {"Authorization": "Basic " + base64.b64encode(b"app:wrong").decode()}
    for _ in range(5):  # 401 invalid_client each time, and the sequence stays where it is
        resp = await oauth.post("/oauth/token", data=GRANT, headers=wrong)
        await expect_error(resp, 401, "invalid_client", 1600)
    await expect_error(await do_token(oauth, ""), 503, "server_error", 1016)
    assert (await do_token(oauth, "")).status == 200
    # Seeded chance: the same answers as a run that never saw the wrong secrets.
    await use(oauth, {"match": "app", "on": "token", "chance": 0.5, "error": 500}, seed=7)
    fresh = [(await do_token(oauth, "")).status for _ in range(8)]
    await use(oauth, {"match": "app", "on": "token", "chance": 0.5, "error": 500}, seed=7)
    mixed = []
    for _ in range(8):
        await oauth.post("/oauth/token", data=GRANT, headers=wrong)
        mixed.append((await do_token(oauth, "")).status)
    assert mixed == fresh


async def test_token_requests_count_on_the_clients_own_budget_after_the_secret(
    make_client: Any,
) -> None:
    settings = Settings(oauth_clients=(("app", "secret"), ("other", "pw")), rate_limit=3)
    client = await make_client(settings)
    own = {"name": "own", "network": {"rate_limit": {"limit": 100, "window": 60}}}
    resp = await client.put(
        "/_sim/scenario",
        data=json.dumps(own),
        params={"account": "app"},
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 200, await resp.text()
    # app's own network says 100 a minute: the global 3 does not apply to it.
    for _ in range(6):
        assert (await do_token(client, "")).status == 200
    # A wrong secret for app counts on no client's budget of app's...
    wrong = {"Authorization": "Basic " + base64.b64encode(b"other:wrong").decode()}
    for _ in range(3):
        resp = await client.post("/oauth/token", data=GRANT, headers=wrong)
        assert resp.status in (401, 429)
    # ... so the real "other" still has its whole budget (3 on the global network).
    other = {"Authorization": "Basic " + base64.b64encode(b"other:pw").decode()}
    for _ in range(3):
        assert (await client.post("/oauth/token", data=GRANT, headers=other)).status == 200
    resp = await client.post("/oauth/token", data=GRANT, headers=other)
    await expect_error(resp, 429, "rate_limit", 1014)


async def test_latency_on_status(client: Client) -> None:
    otp = await create(client)
    await use(client, {"match": "*", "on": "status", "latency": 0.5})
    started = time.monotonic()
    assert (await do_status(client, otp["otpId"])).status == 200
    assert time.monotonic() - started >= 0.45


async def test_scenario_json_shows_endpoints_and_faults(client: Client) -> None:
    await use(
        client,
        {"match": "*", "on": ["verify", "cancel"], "fault": "hang", "hang": 5},
        {"match": "app*", "on": "token", "sequence": [{"fault": "reset"}, {"ok": True}]},
    )
    rules = (await (await client.get("/_sim/scenario")).json())["network"]["rules"]
    assert rules == [
        {"match": "*", "on": ["verify", "cancel"], "action": "fault", "fault": "hang", "hang": 5},
        {
            "match": "app*",
            "on": ["token"],
            "sequence": [{"action": "fault", "fault": "reset"}, {"action": "deliver"}],
        },
    ]


# -- connection-level faults, as a real client sees them -----------------------------------


@pytest.mark.parametrize("endpoint", list(CALLS))
async def test_reset_closes_without_an_answer(oauth: Client, endpoint: str) -> None:
    otp_id = await subject(oauth, endpoint)
    await use(oauth, {"match": "*", "on": endpoint, "fault": "reset"})
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await CALLS[endpoint](oauth, otp_id)


@pytest.mark.parametrize("endpoint", list(CALLS))
async def test_truncated_promises_more_than_it_sends(oauth: Client, endpoint: str) -> None:
    otp_id = await subject(oauth, endpoint)
    await use(oauth, {"match": "*", "on": endpoint, "fault": "truncated"})
    resp = await CALLS[endpoint](oauth, otp_id)
    assert resp.status == OK[endpoint]
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()


@pytest.mark.parametrize("endpoint", list(CALLS))
async def test_garbage_is_not_http(oauth: Client, endpoint: str) -> None:
    otp_id = await subject(oauth, endpoint)
    await use(oauth, {"match": "*", "on": endpoint, "fault": "garbage"})
    with pytest.raises(aiohttp.ClientResponseError, match=r"(?i)status line|invalid|bad"):
        await CALLS[endpoint](oauth, otp_id)


@pytest.mark.parametrize("endpoint", list(CALLS))
async def test_hang_holds_until_the_client_gives_up(oauth: Client, endpoint: str) -> None:
    otp_id = await subject(oauth, endpoint)
    await use(oauth, {"match": "*", "on": endpoint, "fault": "hang"})
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(CALLS[endpoint](oauth, otp_id), 0.5)


async def test_hang_ends_at_its_bound_with_a_closed_connection(client: Client) -> None:
    await use(client, {"match": "*", "fault": "hang", "hang": 0.3})
    started = time.monotonic()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await do_create(client, "")
    assert 0.25 <= time.monotonic() - started < 10  # generous: a shared machine


async def test_hang_is_bounded_by_max_wait(make_client: Any) -> None:
    client = await make_client(Settings(max_wait=0.3))
    await use(client, {"match": "*", "fault": "hang", "hang": 600})
    started = time.monotonic()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await do_create(client, "")
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("fault", ["reset", "truncated", "garbage", "hang"])
async def test_a_create_fault_creates_nothing(client: Client, fault: str) -> None:
    rule: dict[str, Any] = {"match": FR, "fault": fault}
    if fault == "hang":
        rule["hang"] = 0.2
    await use(client, rule)

    async def ask() -> bytes:
        return await (await do_create(client, "")).read()

    with pytest.raises((aiohttp.ClientError, asyncio.TimeoutError)):
        await ask()
    sim = sim_of(client)
    assert sim.list_otps() == []
    assert sim.messages() == []


async def test_a_faulted_request_leaves_other_clients_alone(client: Client) -> None:
    otp = await create(client)
    await use(client, {"match": OTHER, "on": ["create", "status"], "fault": "hang"})
    hung = asyncio.ensure_future(client.post("/otp", json={"phoneNumber": OTHER}, headers=KEY))
    await asyncio.sleep(0.1)
    assert not hung.done()
    async with aiohttp.ClientSession() as other:  # another client, its own connections
        base = str(client.make_url("/"))
        for _ in range(3):
            resp = await other.post(f"{base}otp", json={"phoneNumber": FR}, headers=KEY)
            assert resp.status == 201
        resp = await other.get(f"{base}otp/{otp['otpId']}", headers=KEY)
        assert resp.status == 200
    assert not hung.done()
    hung.cancel()


# -- what the request journal says of a fault ----------------------------------------------


async def journal_of(client: Client) -> list[dict[str, Any]]:
    resp = await client.get("/_sim/requests", params={"path": "/o*"})
    return (await resp.json())["requests"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("fault", ["reset", "truncated", "garbage"])
@pytest.mark.parametrize("endpoint", list(CALLS))
async def test_every_connection_fault_is_journaled_as_no_answer(
    oauth: Client, endpoint: str, fault: str
) -> None:
    """A truncated answer is no answer either: the journal (and assert_called(status=201))
    must not show it as a success (a new user's finding)."""
    otp_id = await subject(oauth, endpoint)
    await use(oauth, {"match": "*", "on": endpoint, "fault": fault})
    with contextlib.suppress(aiohttp.ClientError):
        resp = await CALLS[endpoint](oauth, otp_id)
        await resp.read()
    sim = sim_of(oauth)
    await sim.wait_durable()
    newest = (await journal_of(oauth))[0]
    assert newest["status"] == 499, newest
    assert newest["rules"] == ["*"]


@pytest.mark.parametrize("endpoint", ["verify", "token"])
async def test_a_client_giving_up_on_a_hang_is_journaled_without_a_failure(
    start_server: Any, endpoint: str
) -> None:
    """The client times out while its verify/token request hangs (the docs' advice): a
    real server journals it (499) and logs no error (it used to fail reading a body from
    a connection already gone: the plugin then failed the next test)."""
    process, base = start_server()
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{base}/otp", json={"phoneNumber": FR}, headers=KEY)
        otp_id = (await resp.json())["otpId"]
        pin = (await (await http.get(f"{base}/_sim/otps/{otp_id}")).json())["pin"]
        rules = {"rules": [{"match": "*", "on": endpoint, "fault": "hang", "hang": 5}]}
        await http.put(f"{base}/_sim/scenario", data=json.dumps({"network": rules}))
        if endpoint == "verify":
            call = http.post(f"{base}/otp/{otp_id}", json={"pin": pin}, headers=KEY)
        else:
            call = http.post(f"{base}/oauth/token", data=GRANT, headers=BASIC)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(call, 0.3)
        for _ in range(100):
            journal = (await (await http.get(f"{base}/_sim/requests")).json())["requests"]
            if journal[0]["status"] == 499:
                break
            await asyncio.sleep(0.05)
    assert (journal[0]["method"], journal[0]["status"]) == ("POST", 499), journal[:1]
    process.terminate()
    _, stderr = process.communicate(timeout=30)
    assert "could not journal" not in stderr
    assert "Traceback" not in stderr
