"""The engine's per-request path, made cheaper (issue 18): what it must keep.

A seeded run gives the same ids, PINs, events and answers as before the work on speed
(the digest below was taken on the code before it); the shortcuts (ids built without
``uuid``, the segmentation known per template and PIN length) agree with what they
replace.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import uuid
from typing import Any

import pytest

from otpsim.clock import Clock
from otpsim.config import Settings
from otpsim.domain.pins import ALPHABETS, generate
from otpsim.domain.sms import render, segment, segment_for
from otpsim.engine import Simulator
from otpsim.engine.simulator import uuid4_text

_V4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

# Two POST /otp on a seeded simulator with a frozen clock, everything they answered and
# published, as canonical JSON: its SHA-256 on the code before issue 18's engine work.
SEEDED_RUN_SHA256 = "d7b09cbc2c49ef36385f723d41aeaf6b6803b4636aee5f59cefde1f2342c3efa"


async def _seeded_run() -> dict[str, Any]:
    sim = Simulator(
        Settings(), clock=Clock(start=1_700_000_000.0, frozen=True), rng=random.Random(7)
    )
    events: list[dict[str, Any]] = []
    sim.subscribe(lambda event: events.append(event.to_json()))
    bodies = (
        {"phoneNumber": "+33612345678"},
        {
            "phoneNumber": "+447911123456",
            "pinType": "letters",
            "pinLength": 8,
            "template": "Code: {{pin}} " + "é" * 150,
        },
    )
    answers = [(await sim.create_otp(body, account="acct")).to_api() for body in bodies]
    return {"api": answers, "events": events}


def test_a_seeded_run_gives_what_it_gave_before() -> None:
    run = asyncio.run(_seeded_run())
    assert run["api"][0]["otpId"] == "0ed90475-9531-485d-9d9d-c9f81818e811"
    assert run["events"][1]["data"]["pin"] == "526018"
    assert [e["type"] for e in run["events"]] == [
        "otp.created", "message.created", "message.delivered",
    ] * 2  # fmt: skip
    assert run["api"][1]["parts"] == 2
    text = json.dumps(run, sort_keys=True)
    assert hashlib.sha256((text + "\n").encode()).hexdigest() == SEEDED_RUN_SHA256


def test_uuid4_text_is_what_the_uuid_module_gives() -> None:
    for raw in [bytes(16), b"\xff" * 16, *(os.urandom(16) for _ in range(2000))]:
        assert uuid4_text(raw) == str(uuid.UUID(bytes=raw, version=4))


async def test_unseeded_ids_are_distinct_uuid4() -> None:
    sim = Simulator(Settings(), clock=Clock(frozen=True))
    seen: set[str] = set()
    for _ in range(50):
        otp = await sim.create_otp({"phoneNumber": "+33612345678"}, account="a")
        message = sim.latest_message(otp_id=otp.otp_id)
        assert message is not None
        for value in (otp.otp_id, message.message_id):
            assert _V4.match(value)
            assert value not in seen
            seen.add(value)


@pytest.mark.parametrize(
    "template",
    [
        "Your code is {{pin}}",
        "{{pin}} " + "a" * 150,  # two parts from some PIN lengths on
        "{{pin}}{{pin}} €€ " + "b" * 130,  # extension characters: two septets each
        "Код {{pin}} " + "ж" * 55,  # UCS-2
        "{{pin}} 😀" * 10,  # surrogate pairs
    ],
)
def test_segment_for_is_the_rendered_texts_segmentation(template: str) -> None:
    rng = random.Random(3)
    for pin_type in ALPHABETS:
        for length in range(4, 11):
            pin = generate(pin_type, length, rng)
            assert segment_for(template, length) == segment(render(template, pin))
