"""Verify, cancel and get: every row of the contract's tables, and the state machine."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import KEY, create, expect_error, pin_of, sim_of

from otpsim.store.sqlite import SqliteStore

UNKNOWN = "0b5b4f3e-0000-4000-8000-000000000000"


async def verify(client: Any, otp_id: str, pin: Any) -> Any:
    return await client.post(f"/otp/{otp_id}", json={"pin": pin}, headers=KEY)


async def status_of(client: Any, otp_id: str) -> dict[str, Any]:
    resp = await client.get(f"/otp/{otp_id}", headers=KEY)
    assert resp.status == 200
    return await resp.json()  # type: ignore[no-any-return]


async def test_correct_pin_verifies(client: Any) -> None:
    otp = await create(client)
    resp = await verify(client, otp["otpId"], await pin_of(client, otp["otpId"]))
    assert resp.status == 200
    assert await resp.json() == {"status": "VERIFIED"}
    assert (await status_of(client, otp["otpId"]))["status"] == "VERIFIED"


async def test_numeric_pin_in_json_is_accepted(client: Any) -> None:
    # A JSON number cannot carry a leading zero: use the first PIN that has none.
    for _ in range(20):
        otp = await create(client, pinType="numbers")
        pin = await pin_of(client, otp["otpId"])
        if not pin.startswith("0"):
            break
    assert (await verify(client, otp["otpId"], int(pin))).status == 200


async def test_pin_is_case_sensitive(client: Any) -> None:
    otp = await create(client, pinType="letters", maxAttempts=3)
    pin = await pin_of(client, otp["otpId"])
    await expect_error(await verify(client, otp["otpId"], pin.lower()), 400, "invalid_pin", 2029)


async def test_unknown_otp_is_404_2021_everywhere(client: Any) -> None:
    for resp in (
        await client.get(f"/otp/{UNKNOWN}", headers=KEY),
        await verify(client, UNKNOWN, "1234"),
        await client.delete(f"/otp/{UNKNOWN}", headers=KEY),
        await client.get("/otp/not-a-uuid", headers=KEY),
    ):
        await expect_error(resp, 404, "not_found", 2021)


@pytest.mark.parametrize("body", [{}, {"pin": ""}, {"pin": "   "}, {"pin": None}, {"pin": ["1"]}])
async def test_pin_missing_or_empty_is_2022(client: Any, body: dict[str, Any]) -> None:
    otp = await create(client)
    resp = await client.post(f"/otp/{otp['otpId']}", json=body, headers=KEY)
    await expect_error(resp, 400, "invalid_param", 2022)


async def test_wrong_pins_count_attempts_then_fail(client: Any) -> None:
    otp = await create(client, maxAttempts=3, pinType="letters")
    otp_id = otp["otpId"]
    await expect_error(await verify(client, otp_id, "1"), 400, "invalid_pin", 2029)
    assert (await status_of(client, otp_id))["attempts"] == 1
    await expect_error(await verify(client, otp_id, "2"), 400, "invalid_pin", 2029)
    await expect_error(await verify(client, otp_id, "3"), 400, "otp_failed", 2027)
    after = await status_of(client, otp_id)
    assert (after["status"], after["attempts"]) == ("FAILED", 3)
    # Even the right PIN is refused now.
    right = await pin_of(client, otp_id)
    await expect_error(await verify(client, otp_id, right), 400, "otp_failed", 2026)


async def test_max_attempts_one_fails_on_first_wrong_pin(client: Any) -> None:
    otp = await create(client, maxAttempts=1, pinType="letters")
    await expect_error(await verify(client, otp["otpId"], "0"), 400, "otp_failed", 2027)


async def test_already_verified_is_2023(client: Any) -> None:
    otp = await create(client)
    pin = await pin_of(client, otp["otpId"])
    assert (await verify(client, otp["otpId"], pin)).status == 200
    await expect_error(await verify(client, otp["otpId"], pin), 400, "otp_verified", 2023)


async def test_cancelled_is_2024_on_verify(client: Any) -> None:
    otp = await create(client)
    assert (await client.delete(f"/otp/{otp['otpId']}", headers=KEY)).status == 200
    pin = await pin_of(client, otp["otpId"])
    await expect_error(await verify(client, otp["otpId"], pin), 400, "otp_cancelled", 2024)


async def test_pin_after_ttl_is_2028_then_2025(client: Any) -> None:
    otp = await create(client, ttl=60)
    pin = await pin_of(client, otp["otpId"])
    sim_of(client).move_clock(advance=60)  # exactly at dateExpires the PIN is no longer valid
    await expect_error(await verify(client, otp["otpId"], pin), 400, "otp_expired", 2028)
    assert (await status_of(client, otp["otpId"]))["status"] == "EXPIRED"
    await expect_error(await verify(client, otp["otpId"], pin), 400, "otp_expired", 2025)


async def test_first_late_pin_is_2028_even_when_expiry_was_already_recorded(client: Any) -> None:
    otp = await create(client, ttl=60)
    sim_of(client).move_clock(advance=120)
    assert (await status_of(client, otp["otpId"]))["status"] == "EXPIRED"  # recorded first
    await expect_error(await verify(client, otp["otpId"], "nope"), 400, "otp_expired", 2028)
    await expect_error(await verify(client, otp["otpId"], "nope"), 400, "otp_expired", 2025)


async def test_one_second_before_expiry_still_verifies(client: Any) -> None:
    otp = await create(client, ttl=60)
    pin = await pin_of(client, otp["otpId"])
    sim_of(client).move_clock(advance=59.999)
    assert (await verify(client, otp["otpId"], pin)).status == 200


async def test_advancing_the_clock_over_the_api_expires(client: Any) -> None:
    otp = await create(client, ttl=300)
    resp = await client.post("/_sim/clock", json={"advance": 299})
    assert resp.status == 200
    assert (await status_of(client, otp["otpId"]))["status"] == "PENDING"
    await client.post("/_sim/clock", json={"advance": 1})
    assert (await status_of(client, otp["otpId"]))["status"] == "EXPIRED"
    pin = await pin_of(client, otp["otpId"])
    await expect_error(await verify(client, otp["otpId"], pin), 400, "otp_expired", 2028)
    await expect_error(await verify(client, otp["otpId"], pin), 400, "otp_expired", 2025)


async def test_cancel(client: Any) -> None:
    otp = await create(client)
    resp = await client.delete(f"/otp/{otp['otpId']}", headers=KEY)
    assert resp.status == 200
    assert await resp.json() == {"info": {"id": otp["otpId"]}}
    assert (await status_of(client, otp["otpId"]))["status"] == "CANCELLED"
    again = await client.delete(f"/otp/{otp['otpId']}", headers=KEY)
    await expect_error(again, 403, "access_denied", 2030)


@pytest.mark.parametrize("final", ["VERIFIED", "EXPIRED", "FAILED"])
async def test_cancel_non_pending_is_2031(client: Any, final: str) -> None:
    otp = await create(client, maxAttempts=1, pinType="letters", ttl=60)
    otp_id = otp["otpId"]
    if final == "VERIFIED":
        await verify(client, otp_id, await pin_of(client, otp_id))
    elif final == "FAILED":
        await verify(client, otp_id, "0")
    else:
        sim_of(client).move_clock(advance=61)
    resp = await client.delete(f"/otp/{otp_id}", headers=KEY)
    await expect_error(resp, 403, "access_denied", 2031)
    assert (await status_of(client, otp_id))["status"] == final


async def test_otp_id_is_case_insensitive(client: Any) -> None:
    otp = await create(client)
    resp = await client.get(f"/otp/{otp['otpId'].upper()}", headers=KEY)
    assert (await resp.json())["otpId"] == otp["otpId"]


@pytest.mark.parametrize("db", [False, True], ids=["memory", "sqlite"])
async def test_what_is_kept_per_otp_is_bounded_whatever_is_sent(
    make_client: Any, tmp_path: Any, db: bool
) -> None:
    store = SqliteStore(tmp_path / "otpsim.db") if db else None
    client = await make_client(store=store)
    otp = await create(client, maxAttempts=3)
    otp_id = otp["otpId"]
    huge = "9" * 60_000  # a wrong PIN, as long as the body limit allows
    answers = []
    for _ in range(40):
        resp = await verify(client, otp_id, huge)
        answers.append((await resp.json())["error"]["code"])
    # An over-long PIN is a wrong PIN like any other; past FAILED, the usual 2026.
    assert answers == [2029, 2029, 2027] + [2026] * 37
    stored = await (await client.get(f"/_sim/otps/{otp_id}")).json()
    assert [a["code"] for a in stored["verifyAttempts"]] == [2029, 2029, 2027]
    assert {a["pin"] for a in stored["verifyAttempts"]} == {"9" * 10 + "…"}  # truncated
    assert stored["verifyAttemptsAfterFinal"] == 37  # counted, not kept
    assert len(json.dumps(stored)) < 4096
    if store is not None:
        row = store._db.execute(  # type: ignore[attr-defined]
            "SELECT length(record) FROM otps WHERE otp_id = ?", (otp_id,)
        ).fetchone()
        assert row[0] < 4096


async def test_attempts_after_a_final_status_are_counted_not_kept(client: Any) -> None:
    otp = await create(client)
    otp_id = otp["otpId"]
    pin = await pin_of(client, otp_id)
    assert (await verify(client, otp_id, pin)).status == 200
    for _ in range(5):
        await expect_error(await verify(client, otp_id, pin), 400, "otp_verified", 2023)
    stored = await (await client.get(f"/_sim/otps/{otp_id}")).json()
    assert [a["result"] for a in stored["verifyAttempts"]] == ["VERIFIED"]
    assert stored["verifyAttemptsAfterFinal"] == 5
    # An expiry the sweeper recorded: the first late PIN is still told 2028, then 2025.
    late = await create(client, ttl=60)
    await client.post("/_sim/clock", json={"advance": 61})
    await expect_error(await verify(client, late["otpId"], "1"), 400, "otp_expired", 2028)
    for _ in range(3):
        await expect_error(await verify(client, late["otpId"], "1"), 400, "otp_expired", 2025)
    stored = await (await client.get(f"/_sim/otps/{late['otpId']}")).json()
    assert (stored["verifyAttempts"], stored["verifyAttemptsAfterFinal"]) == ([], 4)
