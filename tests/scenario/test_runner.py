"""The scenario runner: every step kind, expectations, failures, and the JUnit report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import jinja2
import pytest

from otpsim.scenario.model import parse_scenario
from otpsim.scenario.report import summary, write_junit
from otpsim.scenario.runner import ScenarioResult, mismatch, render, run_scenario

EVERY_STEP = """
name: every step
network:
  clock: {frozen: true, start: "2030-01-01T00:00:00Z"}
receiver:
  responses: [500]
steps:
  - reset:
  - create: {phoneNumber: "+33612345678", ttl: 120, otpCallbackUrl: "{{ callback_url }}"}
    as: otp
    expect: {status: 201, body: {status: PENDING}}
  - latest: {phoneNumber: "+33612345678", wait: 2}
    as: sms
  - messages: {otpId: "{{ otp.otpId }}"}
    expect: {body: {messages: [{pin: "{{ sms.pin }}"}]}}
  - get: {otpId: "{{ otp.otpId }}"}
    expect: {body: {otpId: "{{ otp.otpId }}"}}
  - verify: {otpId: "{{ otp.otpId }}", pin: "{{ sms.pin }}"}
    expect: {body: {status: VERIFIED}}
  - expect_callback: {otpId: "{{ otp.otpId }}", status: VERIFIED, within: 5}
  - advance: 5
  - expect_callback: {otpId: "{{ otp.otpId }}", count: 2}
    as: hook
  - request: {method: GET, path: "/_sim/callbacks?otpId={{ otp.otpId }}"}
    expect: {body: {callbacks: [{status: delivered}]}}
  - set_clock: "2030-06-01T00:00:00Z"
  - request: {method: GET, path: /_sim/clock}
    expect: {body: {now: "2030-06-01T00:00:00.000Z"}}
  - create: {phoneNumber: "+33612345679"}
    as: second
  - cancel: {otpId: "{{ second.otpId }}"}
    expect: {body: {info: {id: "{{ second.otpId }}"}}}
  - wait: 0.05
  - request: {method: GET, path: "/otp/{{ second.otpId }}"}
    expect: {body: {status: CANCELLED}}
"""


async def run(text: str) -> ScenarioResult:
    return await run_scenario(parse_scenario(text, "t.yaml"), text)


async def test_every_step_kind_runs() -> None:
    result = await run(EVERY_STEP)
    assert result.failure is None
    assert result.ok
    assert [s.ok for s in result.steps] == [True] * 16
    assert "2 callback item(s) received" in result.steps[8].detail


async def test_the_first_mismatch_is_reported_and_later_steps_skipped() -> None:
    result = await run(
        """
steps:
  - create: {phoneNumber: "+33612345678"}
    as: otp
  - verify: {otpId: "{{ otp.otpId }}", pin: "0000"}
    expect: {body: {status: VERIFIED}}
  - get: {otpId: "{{ otp.otpId }}"}
"""
    )
    assert not result.ok
    assert [s.ok for s in result.steps] == [True, False, None]
    assert result.failure == (
        "step 2 verify: expected success, got 400 invalid_pin 2029: The PIN provided does not verify"
    )


async def test_expected_error_that_does_not_come() -> None:
    result = await run(
        """
steps:
  - create: {phoneNumber: "+33612345678"}
    expect: {status: 400, error: {code: 2020}}
"""
    )
    assert result.failure is not None
    assert result.failure.startswith("step 1 create: status: expected 400, got 201")


async def test_wrong_error_code() -> None:
    result = await run(
        """
steps:
  - create: {phoneNumber: "+3361234"}
    expect: {error: {code: 2001}}
"""
    )
    assert result.failure == "step 1 create: error.code: expected 2001, got 2020"


async def test_missing_callback_fails_with_what_was_received() -> None:
    result = await run(
        """
steps:
  - expect_callback: {status: VERIFIED, within: 0.2}
"""
    )
    assert result.failure is not None
    assert "expected 1 callback(s) for otpId=None status=VERIFIED within 0.2s; received 0" in (
        result.failure
    )


async def test_an_unreachable_target_is_a_clear_error() -> None:
    text = "steps:\n  - advance: 1\n"
    result = await run_scenario(parse_scenario(text, "t.yaml"), text, target="http://127.0.0.1:9")
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("cannot talk to the simulator at http://127.0.0.1:9")
    assert result.errored  # an error, not a failure of the application
    assert result.unreachable is not None


async def test_a_step_that_crashes_is_an_error_and_a_wrong_answer_a_failure() -> None:
    crashed = await run(
        "steps:\n  - create: {phoneNumber: '+33612345678'}\n    as: otp\n"
        "  - expect_callback: {count: '{{ otp.otpId }}', within: 1}\n"
    )
    assert crashed.errored
    assert not crashed.ok
    assert crashed.steps[1].crashed
    assert crashed.failure is not None
    assert crashed.failure.startswith(
        "step 2 expect_callback: t.yaml:4: steps[1].expect_callback.count: expected a whole "
        "number, got '"
    )
    failed = await run("steps:\n  - get: {otpId: nope}\n")
    assert not failed.ok
    assert not failed.errored
    assert not failed.steps[0].crashed


def test_render_keeps_types_and_fills_text() -> None:
    context = {"otp": {"otpId": "abc", "ttl": 60}, "n": 5}
    assert render("{{ otp.ttl }}", context) == 60
    assert render("id {{ otp.otpId }}", context) == "id abc"
    assert render({"a": ["{{ n }}", "x"]}, context) == {"a": [5, "x"]}
    assert render("+33612345678", context) == "+33612345678"


def test_render_refuses_what_would_grow_without_bound() -> None:
    context = {"s": "ab", "n": 7}
    assert render("{{ s * 3 }}{{ n ** 2 }}", context) == "ababab49"
    # The cheap one first: on unfixed code the others allocate gigabytes before failing.
    for template in ("{{ n ** 999999 }}", "{{ s * 999999999 }}", "{{ [s] * 999999999 }}",
                     "{{ '%0999999999d' % n }}"):  # fmt: skip
        with pytest.raises(jinja2.exceptions.SecurityError):
            render(template, context)
    with pytest.raises(jinja2.exceptions.SecurityError, match="more than 100,000 characters"):
        render("{{ s * 50000 }}{{ s * 50000 }}", context)  # each fine, together too long


def test_mismatch_is_a_subset_check() -> None:
    assert mismatch({"a": 1}, {"a": 1, "b": 2}) is None
    assert mismatch({"a": {"b": 1}}, {"a": {"b": 2}}) == "body.a.b: expected 1, got 2"
    assert mismatch({"a": 1}, {}) == "body.a: missing (expected 1)"
    assert mismatch([{"x": 1}], [{"x": 1}, {"x": 2}]) is not None


async def test_junit_report(tmp_path: Path) -> None:
    good = await run("steps:\n  - advance: 1\n")
    bad = await run("steps:\n  - get: {otpId: nope}\n")
    path = tmp_path / "report.xml"
    write_junit([good, bad], path)
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    cases = suite.findall("testcase")
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None
    assert "404 not_found 2021" in (failure.get("message") or "")
    assert summary([good, bad]) == "scenarios: 1 passed, 1 failed"


async def test_expect_request_passes_on_what_was_called_refusals_included() -> None:
    result = await run(
        """
network:
  rules:
    - {match: "+33612345678", error: 503, note: FR down}
steps:
  - create: {phoneNumber: "+33612345678"}
    expect: {status: 503}
  - create: {phoneNumber: "+4915123456789"}
    as: otp
  - expect_request: {path: /otp, status: 503, times: 1, body: {phoneNumber: "+33612345678"}}
    as: refused
    expect: {body: {last: {rules: [FR down]}}}
  - expect_request: {path: /otp, method: post, status: 2xx, otpId: "{{ otp.otpId }}"}
  - expect_request: {path: "/otp*", times: 2}
  - expect_request: {path: /oauth/token, times: 0}
"""
    )
    assert result.ok, result.failure
    assert result.steps[2].detail == "1 matching request(s) journaled"


async def test_expect_request_fails_listing_what_was_called() -> None:
    result = await run(
        """
steps:
  - create: {phoneNumber: "+4915123456789"}
  - expect_request: {path: /otp, status: 503, within: 0.1}
"""
    )
    assert result.failure is not None
    assert result.failure.startswith(
        "step 2 expect_request: expected /otp with status 503 to be called at least once, "
        "but it was called 0 time(s). Requests received (closest first):\n  r-"
    )
    assert " POST /otp -> 201 " in result.failure
    assert not result.errored  # a failure, not an error


async def test_expect_request_on_a_pin_shows_the_pin_it_compared() -> None:
    result = await run(
        """
steps:
  - create: {phoneNumber: "+4915123456789"}
    as: otp
  - verify: {otpId: "{{ otp.otpId }}", pin: "123123"}
    expect: {status: 400}
  - expect_request: {path: "/otp/*", body: {pin: "000000"}}
"""
    )
    assert result.failure is not None
    assert "'pin': '123123'" in result.failure  # what was compared, not '****'
