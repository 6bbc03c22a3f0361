"""A journal record's body as the views show it: parsed when it is a whole JSON object,
PINs masked whatever the form, records of an earlier version still readable."""

from __future__ import annotations

from typing import Any

from otpsim.domain.journal import (
    RequestRecord,
    is_pin_key,
    is_secret_key,
    mask_text,
    parse_object,
    parse_request_id,
)


def record(body: Any, *, body_json: bool = False, path: str = "/otp") -> RequestRecord:
    return RequestRecord(
        seq=1, at=0.0, method="POST", path=path, status=400, request_id="x",
        body=body, body_json=body_json,
    )  # fmt: skip


def test_a_record_of_an_earlier_version_keeps_its_parsed_body() -> None:
    data = record({"pin": "1234", "x": 1}).to_record()
    del data["body_json"]  # (what an earlier version wrote to its SQLite file)
    old = RequestRecord.from_record(data)
    assert old.to_json()["body"] == {"pin": "****", "x": 1}
    assert old.to_json(pins=True)["body"] == {"pin": "1234", "x": 1}


def test_a_json_body_is_shown_parsed_and_masked() -> None:
    entry = record('{"pin": "1234", "n": 1.5}', body_json=True, path="/otp/abc")
    assert entry.to_json()["body"] == {"pin": "****", "n": 1.5}
    assert entry.to_json(pins=True)["body"] == {"pin": "1234", "n": 1.5}


def test_pins_in_text_are_masked_however_they_are_spelled() -> None:
    for text, masked in (
        ('{"p\\u0069n": "1234", "a": 1}', '{"p\\u0069n": "****", "a": 1}'),
        ('{"pin" : [1, {"b": "1234"}], "a": 1}', '{"pin" : "****", "a": 1}'),
        ('{"a": "\\"pin\\": 1234", "PIN": 1234}', '{"a": "\\"pin\\": 1234", "PIN": "****"}'),
        ('{"pin": "12', '{"pin": "****"'),
        ("p%69n=1234&a=1", "p%69n=****&a=1"),
    ):
        assert mask_text(text, is_pin_key) == masked


def test_request_ids_are_ascii_digits_within_64_bits() -> None:
    assert parse_request_id("r-000123") == 123
    assert parse_request_id("r-9223372036854775807") == 2**63 - 1
    for text in ("r-", "r-\u00b2", "r-\u0663", "r-9223372036854775808", "r-+1", "r- 1"):
        assert parse_request_id(text) is None


def test_a_secret_in_a_url_inside_json_is_masked_and_the_json_stays_json() -> None:
    text = '{"cb": "https://app/cb?client_secret=abc&x=1", "n": 2}'
    masked = mask_text(text, is_secret_key)
    assert parse_object(masked) == {"cb": "https://app/cb?client_secret=****&x=1", "n": 2}
