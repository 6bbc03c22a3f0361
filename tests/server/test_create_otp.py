"""POST /otp: the OTP object, defaults, localized templates, parts and cost, every error row."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from support import FR, KEY, START, create, expect_error, sim_of

from otpsim.clock import iso
from otpsim.config import Settings

OTP_FIELDS = {
    "otpId", "trackId", "phoneNumber", "countryIso", "status", "cost", "parts", "maxAttempts",
    "attempts", "ttl", "otpCallbackUrl", "dateCreated", "dateExpires",
}  # fmt: skip


async def test_created_otp_has_exactly_the_contract_fields(client: Any) -> None:
    track = str(uuid.uuid4())
    otp = await create(
        client, ttl=120, maxAttempts=4, trackId=track, otpCallbackUrl="https://example.test/cb"
    )
    assert set(otp) == OTP_FIELDS  # and never the PIN
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", otp["otpId"]
    )
    assert otp["trackId"] == track
    assert otp["phoneNumber"] == FR
    assert otp["countryIso"] == "FR"
    assert otp["status"] == "PENDING"
    assert otp["attempts"] == 0
    assert (otp["ttl"], otp["maxAttempts"]) == (120, 4)
    assert otp["otpCallbackUrl"] == "https://example.test/cb"
    assert otp["dateCreated"] == iso(START)
    assert otp["dateExpires"] == iso(START + 120)
    assert otp["dateCreated"].endswith("Z")


async def test_get_returns_the_same_object(client: Any) -> None:
    otp = await create(client)
    resp = await client.get(f"/otp/{otp['otpId']}", headers=KEY)
    assert resp.status == 200
    assert await resp.json() == otp


async def test_unset_fields_take_configured_defaults(make_client: Any) -> None:
    client = await make_client(
        Settings(
            default_from="ACME", default_template="ACME code {{pin}}", default_ttl=900,
            default_max_attempts=7, default_pin_type="letters", default_pin_length=8,
            price_per_part=0.1,
        )
    )  # fmt: skip
    otp = await create(client)
    assert (otp["ttl"], otp["maxAttempts"], otp["cost"]) == (900, 7, 0.1)
    message = sim_of(client).messages(otp_id=otp["otpId"])[0]
    assert message.sender == "ACME"
    assert re.fullmatch(r"ACME code [A-Z]{8}", message.text)


async def test_national_number_with_country_iso(client: Any) -> None:
    otp = await create(client, phoneNumber="0612345678", countryIso="FR")
    assert otp["phoneNumber"] == FR
    assert otp["countryIso"] == "FR"


async def test_numeric_strings_are_accepted_for_numbers(client: Any) -> None:
    otp = await create(client, ttl="600", maxAttempts="2", pinLength="5")
    assert (otp["ttl"], otp["maxAttempts"]) == (600, 2)


async def test_null_means_not_sent(client: Any) -> None:
    otp = await create(client, ttl=None, trackId=None, otpCallbackUrl=None, template=None)
    assert otp["ttl"] == 300
    assert otp["trackId"] is None


@pytest.mark.parametrize(
    ("pin_type", "length", "pattern"),
    [
        ("numbers", 4, r"[0-9]{4}"),
        ("letters", 7, r"[A-Z]{7}"),
        ("alphanumeric", 10, r"[A-Z0-9]{10}"),
    ],
)
async def test_pin_type_and_length(client: Any, pin_type: str, length: int, pattern: str) -> None:
    otp = await create(client, pinType=pin_type, pinLength=length)
    pin = sim_of(client).get_otp(otp["otpId"]).pin
    assert re.fullmatch(pattern, pin)


# -- localized templates --------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "expected"),
    [
        ("+33612345678", "fr"),  # France speaks French
        ("+4915123456789", "de"),  # Germany: template_de
        ("+32470123456", "fr"),  # Belgium speaks nl, fr, de: no nl template, so fr
        ("+447400123456", None),  # UK: no English template offered -> generic
        ("+359888123456", "bg"),
    ],
)
async def test_localized_template_is_chosen_by_the_numbers_country(
    client: Any, phone: str, expected: str | None
) -> None:
    templates = {
        "template": "Code: {{pin}}",
        "template_fr": "Code FR: {{pin}}",
        "template_de": "Code DE: {{pin}}",
        "template_bg": "Код: {{pin}}",
    }
    otp = await create(client, phoneNumber=phone, **templates)
    message = sim_of(client).messages(otp_id=otp["otpId"])[0]
    key = "template" if expected is None else f"template_{expected}"
    assert message.text == templates[key].replace("{{pin}}", message.pin)


async def test_without_any_template_the_configured_default_is_used(client: Any) -> None:
    otp = await create(client, template_de="DE {{pin}}")  # French number, no French template
    message = sim_of(client).messages(otp_id=otp["otpId"])[0]
    assert message.text == f"Your verification code is {message.pin}"


# -- parts, encoding and cost ---------------------------------------------------------


async def test_cyrillic_template_is_ucs2_and_counts_70_67(client: Any) -> None:
    template = "Ваш код подтверждения: {{pin}}. " + "Никому его не сообщайте." * 2
    otp = await create(client, template=template, pinLength=6)
    message = sim_of(client).messages(otp_id=otp["otpId"])[0]
    assert message.encoding == "UCS-2"
    assert len(message.text) > 70
    assert otp["parts"] == message.parts == 2
    assert otp["cost"] == pytest.approx(0.1)


async def test_gsm_extension_character_counts_double(client: Any) -> None:
    # 153 plain characters + the 6-digit PIN = 159 septets: one SMS...
    plain = await create(client, template="x" * 153 + "{{pin}}")
    assert plain["parts"] == 1
    # ...the same 159 characters with three euro signs (2 septets each) are 162: two parts.
    euro = await create(client, template="€€€" + "x" * 150 + "{{pin}}")
    message = sim_of(client).messages(otp_id=euro["otpId"])[0]
    assert message.encoding == "GSM-7"
    assert len(message.text) == 159
    assert euro["parts"] == 2


# -- every validation row of the contract ----------------------------------------------

INVALID: list[tuple[dict[str, Any], int]] = [
    ({"phoneNumber": None}, 2001),
    ({"phoneNumber": ""}, 2001),
    ({"phoneNumber": "0612345678"}, 2002),
    ({"phoneNumber": "0612345678", "countryIso": "UK"}, 2003),
    ({"phoneNumber": "0612345678", "countryIso": 33}, 2003),
    ({"from": ""}, 2004),
    ({"from": "AB"}, 2005),
    ({"from": "A" * 16}, 2005),
    ({"from": 12345}, 2005),
    ({"template": ""}, 2006),
    ({"template": "no placeholder"}, 2006),
    ({"template_fr": "pas de code"}, 2006),
    ({"ttl": "soon"}, 2007),
    ({"ttl": True}, 2007),
    ({"ttl": 60.5}, 2007),
    ({"ttl": 59}, 2008),
    ({"ttl": 1801}, 2009),
    ({"maxAttempts": "many"}, 2010),
    ({"maxAttempts": 0}, 2011),
    ({"maxAttempts": 11}, 2012),
    ({"pinType": ""}, 2013),
    ({"pinType": "emoji"}, 2014),
    ({"pinType": ["numbers"]}, 2014),
    ({"pinLength": "long"}, 2015),
    ({"pinLength": 3}, 2016),
    ({"pinLength": 11}, 2017),
    ({"trackId": "not-a-uuid"}, 2018),
    ({"trackId": "bf325375-e030-fccb-a009-17317c574773"}, 2018),  # version nibble f
    ({"trackId": str(uuid.UUID(int=1))}, 2018),  # version 0
    ({"otpCallbackUrl": "ftp://example.test/cb"}, 2019),
    ({"otpCallbackUrl": "/relative"}, 2019),
    ({"otpCallbackUrl": "https://"}, 2019),
    ({"otpCallbackUrl": "http://exa mple.test/"}, 2019),
    ({"phoneNumber": "+3361234"}, 2020),
    ({"phoneNumber": 33612345678}, 2020),
]


@pytest.mark.parametrize(("fields", "code"), INVALID)
async def test_validation_errors(client: Any, fields: dict[str, Any], code: int) -> None:
    body = {"phoneNumber": FR, **fields}
    resp = await client.post("/otp", json=body, headers=KEY)
    await expect_error(resp, 400, "invalid_param", code)
    assert sim_of(client).list_otps() == []  # nothing was created


async def test_missing_phone_number_entirely(client: Any) -> None:
    resp = await client.post("/otp", json={}, headers=KEY)
    await expect_error(resp, 400, "invalid_param", 2001)


@pytest.mark.parametrize("version", [1, 3, 4, 5])
async def test_track_id_accepts_uuid_v1_to_v5(client: Any, version: int) -> None:
    track = str(uuid.UUID(int=0x1234567890ABCDEF, version=version))
    otp = await create(client, trackId=track)
    assert otp["trackId"] == track


# -- countryIso is always two letters; trackId is echoed in lowercase ----------------------


@pytest.mark.parametrize(
    "phone", ["+870773111632", "+80012345678", "+88213000000", "+979123456789"]
)
async def test_a_non_geographic_number_is_no_coverage_and_nothing_is_sent(
    client: Any, phone: str
) -> None:
    resp = await client.post("/otp", json={"phoneNumber": phone}, headers=KEY)
    err = await expect_error(resp, 403, "no_coverage", 1119)
    assert "non-geographic" in err["message"]
    assert sim_of(client).list_otps() == []
    assert sim_of(client).messages() == []


async def test_a_country_configured_without_coverage_is_403(make_client: Any) -> None:
    client = await make_client(Settings(no_coverage=("FR",)))
    resp = await client.post("/otp", json={"phoneNumber": FR}, headers=KEY)
    err = await expect_error(resp, 403, "no_coverage", 1119)
    assert "(FR)" in err["message"]
    # Field errors come first: a bad ttl to an uncovered country is still 2008.
    resp = await client.post("/otp", json={"phoneNumber": FR, "ttl": 5}, headers=KEY)
    await expect_error(resp, 400, "invalid_param", 2008)
    assert (
        await client.post("/otp", json={"phoneNumber": "+4915123456789"}, headers=KEY)
    ).status == 201


async def test_an_uppercase_track_id_is_stored_and_echoed_in_lowercase(client: Any) -> None:
    track = str(uuid.uuid4()).upper()
    otp = await create(client, trackId=track)
    assert otp["trackId"] == track.lower()
    resp = await client.get(f"/otp/{otp['otpId']}", headers=KEY)
    assert (await resp.json())["trackId"] == track.lower()


async def test_the_providers_own_track_id_example_is_refused_as_not_v1_to_v5(client: Any) -> None:
    resp = await client.post(
        "/otp",
        json={"phoneNumber": FR, "trackId": "bf325375-e030-fccb-a009-17317c574773"},
        headers=KEY,
    )
    await expect_error(resp, 400, "invalid_param", 2018)
