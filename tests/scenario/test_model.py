"""Scenario files: what parses, and every kind of error with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from otpsim.engine.carrier import Action
from otpsim.errors import OtpsimError
from otpsim.scenario.model import STEP_KINDS, load_scenario, parse_scenario, scenario_files

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def error_of(text: str) -> str:
    with pytest.raises(OtpsimError) as info:
        parse_scenario(text, "s.yaml")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_full_scenario_parses() -> None:
    scenario = parse_scenario(
        """
name: demo
network:
  seed: 3
  magic_numbers: false
  rules:
    - match: "+33612345678"
      sequence: [{error: 500}, {deliver: {delay: 5}, latency: 0.5}]
    - match: {regex: "^\\\\+44"}
      undelivered: true
      chance: 0.5
    - match: 4915*
      rate_limit: true
steps:
  - create: {phoneNumber: "+33612345678"}
    as: otp
  - verify: {otpId: "{{ otp.otpId }}", pin: "1234"}
    expect: {status: 400, error: {code: 2029}}
""",
        "s.yaml",
    )
    assert scenario.name == "demo"
    assert scenario.network is not None
    rules = scenario.network.carrier.rules
    assert [f.action for f in rules[0].steps] == [Action.ERROR, Action.DELIVER]
    assert rules[0].steps[1].delay == 5
    assert rules[0].steps[1].latency == 0.5
    assert rules[1].match == "re:^\\+44"
    assert rules[1].chance == 0.5
    assert rules[2].match == "+4915*"
    assert scenario.network.carrier.seed == 3
    assert scenario.network.carrier.magic_numbers is False
    assert [s.kind for s in scenario.steps] == ["create", "verify"]
    assert scenario.steps[1].line == 17
    assert scenario.steps[1].expect.error == {"code": 2029}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # unknown step
        ("steps:\n  - advance: 5\n  - verfy: {otpId: x, pin: y}\n",
         "s.yaml:3: steps[1].verfy: unknown step 'verfy' (expected one of: create,"),
        # wrong type
        ("steps:\n  - advance: soon\n", "s.yaml:2: steps[0].advance: expected a number"),
        ("steps:\n  - create: [1, 2]\n", "s.yaml:2: steps[0].create: expected a mapping, got a list"),
        ("steps: {create: {}}\n", "s.yaml:1: steps: expected a list of steps"),
        ("steps:\n  - wait: 500\n", "s.yaml:2: steps[0].wait: expected a number from 0 to 120"),
        # missing field
        ("steps:\n  - verify: {otpId: x}\n", "s.yaml:2: steps[0].verify: missing field 'pin'"),
        ("steps:\n  - name: nothing\n", "s.yaml:2: steps[0]: expected exactly one step kind"),
        ("network:\n  rules:\n    - error: 500\n", "s.yaml:3: network.rules[0]: missing field 'match'"),
        # bad reference
        ("steps:\n  - get: {otpId: '{{ otp.otpId }}'}\n",
         "s.yaml:2: steps[0].get: bad reference 'otp' in '{{ otp.otpId }}'"),
        ("steps:\n  - create: {}\n    as: otp\n  - get: {otpId: '{{ opt.otpId }}'}\n",
         "s.yaml:4: steps[1].get: bad reference 'opt'"),
        ("steps:\n  - get: {otpId: '{{ otp.otpId '}\n", "s.yaml:2: steps[0].get: bad template"),
        # rules
        ("network:\n  rules:\n    - match: '+33'\n      error: 404\n",
         "s.yaml:4: network.rules[0].error: expected 500 or 503, got 404"),
        ("network:\n  rules:\n    - match: '+33'\n      reject: true\n      undelivered: true\n",
         "s.yaml:3: network.rules[0]: expected one action, got undelivered, reject"),
        ("network:\n  rules:\n    - match: {regex: '(['}\n",
         "s.yaml:3: network.rules[0].match: invalid regular expression"),
        ("network:\n  rules:\n    - match: 'abc'\n",
         "s.yaml:3: network.rules[0].match: expected an E.164 number or a prefix"),
        ("network:\n  rules:\n    - match: '+33'\n      chance: 2\n",
         "s.yaml:4: network.rules[0].chance: expected a number from 0 to 1, got 2"),
        ("network:\n  rules:\n    - match: '+33'\n      delay: 5\n      reject: true\n",
         "s.yaml:4: network.rules[0].delay: 'delay' goes with deliver"),
        ("network:\n  rules:\n    - match: '+33'\n      sequence: []\n",
         "s.yaml:4: network.rules[0].sequence: expected a non-empty list"),
        ("network:\n  rules:\n    - match: '+33'\n      latency: 99\n",
         "s.yaml:4: network.rules[0].latency: expected a number from 0 to 30"),
        ("network:\n  rules:\n    - match: '+33'\n      deliver: maybe\n",
         "s.yaml:4: network.rules[0].deliver: expected true or a mapping"),
        # network settings
        ("network:\n  defaults:\n    ttl: 5\n",
         "s.yaml:3: network.defaults.ttl: Min value for 'ttl' is 60 seconds"),
        ("network:\n  defaults:\n    colour: red\n", "s.yaml:3: network.defaults.colour: unknown key"),
        ("network:\n  clock: {start: someday}\n", "s.yaml:2: network.clock.start: not an ISO 8601"),
        ("network:\n  rate_limit: {window: 5}\n", "s.yaml:2: network.rate_limit: missing field 'limit'"),
        ("network:\n  seed: abc\n", "s.yaml:2: network.seed: expected a whole number"),
        ("network:\n  seed: -1\n",
         "s.yaml:2: network.seed: expected a whole number from 0 to 18446744073709551615"),
        ("network:\n  rules:\n    - match: {regex: '(a)\\1'}\n",
         "s.yaml:3: network.rules[0].match: invalid regular expression: invalid escape sequence"),
        ("network:\n  rules:\n    - match: {regex: '(?<=1)2'}\n",
         "s.yaml:3: network.rules[0].match: invalid regular expression: invalid perl operator"),
        (f"network:\n  rules:\n    - match: {{regex: '{'1' * 1001}'}}\n",
         "s.yaml:3: network.rules[0].match: invalid regular expression: longer than 1000"),
        # templates: expressions only, nothing that reaches Python or grows without bound
        ("steps:\n  - get: {otpId: '{% if 1 %}x{% endif %}'}\n",
         "s.yaml:2: steps[0].get: bad template '{% if 1 %}x{% endif %}': only {{ expressions }}"),
        ("steps:\n  - get: {otpId: '{{ range(9) }}'}\n",
         "s.yaml:2: steps[0].get: bad template '{{ range(9) }}': calling functions or methods"),
        ("steps:\n  - get: {otpId: \"{{ ''.__class__ }}\"}\n",
         "s.yaml:2: steps[0].get: bad template \"{{ ''.__class__ }}\": private attribute"),
        ("steps:\n  - get: {otpId: \"{{ 'x'|indent(9) }}\"}\n",
         "s.yaml:2: steps[0].get: bad template \"{{ 'x'|indent(9) }}\": filter 'indent' is not"),
        ("steps:\n  - get: {otpId: '{{ " + "-" * 900 + "1 }}'}\n",
         "s.yaml:2: steps[0].get: bad template"),
        ("steps:\n  - get: {otpId: '{{ " + "x" * 5000 + " }}'}\n",
         "s.yaml:2: steps[0].get: bad template"),
        # fixed PINs
        ("network:\n  fixed_pins:\n    - {match: '+33612345678', pin: 123456}\n",
         "s.yaml:3: network.fixed_pins[0].pin: expected the PIN as quoted text such as '123456'"),
        ("network:\n  fixed_pins:\n    - {match: '+33612345678', pin: '12'}\n",
         "s.yaml:3: network.fixed_pins[0].pin: expected a PIN of 4 to 10 digits or capital letters, got '12'"),
        ("network:\n  fixed_pins:\n    - {match: '+33612345678', pin: 'abcd'}\n",
         "s.yaml:3: network.fixed_pins[0].pin: expected a PIN of 4 to 10 digits or capital letters"),
        ("network:\n  fixed_pins:\n    - {pin: '1234'}\n",
         "s.yaml:3: network.fixed_pins[0]: missing field 'match'"),
        ("network:\n  fixed_pins:\n    - {match: 'abc', pin: '1234'}\n",
         "s.yaml:3: network.fixed_pins[0].match: expected an E.164 number or a prefix"),
        ("network:\n  fixed_pins:\n    - {match: {regex: '(['}, pin: '1234'}\n",
         "s.yaml:3: network.fixed_pins[0].match: invalid regular expression"),
        ("network:\n  fixed_pins: {'+33612345678': '1234'}\n",
         "s.yaml:2: network.fixed_pins: expected a list of {match, pin}, got a mapping"),
        # the file
        ("name: x\n", "s.yaml:1: expected 'network', 'steps' or both"),
        ("", "s.yaml:1: empty scenario"),
        ("steps:\n  - advance: [\n", "s.yaml:3: invalid YAML"),
        ("stepz: []\n", "s.yaml:1: stepz: unknown key"),
        ("steps:\n  - create: {}\n    as: 'not a name'\n",
         "s.yaml:3: steps[0].as: expected a name such as 'otp'"),
        ("steps:\n  - create: {}\n    expect: {status: 999}\n",
         "s.yaml:3: steps[0].expect.status: expected a number from 100 to 599"),
        ("receiver:\n  responses: [500, 'x']\nsteps: []\n", "s.yaml:2: receiver.responses[1]"),
    ],
)  # fmt: skip
def test_errors_name_file_line_and_what_was_expected(text: str, expected: str) -> None:
    message = error_of(text)
    assert message.startswith(expected), message


def test_every_step_kind_is_known() -> None:
    assert set(STEP_KINDS) == {
        "create", "get", "verify", "cancel", "latest", "messages", "expect_callback",
        "request", "advance", "set_clock", "wait", "reset",
    }  # fmt: skip


def test_ready_made_scenarios_all_load_and_say_what_they_prove() -> None:
    files = scenario_files([str(SCENARIOS)])
    assert len(files) >= 10
    for path in files:
        scenario = load_scenario(path)
        assert scenario.steps, path
        assert path.read_text(encoding="utf-8").startswith("# Proves:"), path


def test_missing_file_and_folder() -> None:
    with pytest.raises(OtpsimError, match="no such file or directory"):
        scenario_files(["/nonexistent.yaml"])
    with pytest.raises(OtpsimError, match="cannot read scenario"):
        load_scenario("/nonexistent.yaml")
