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
        ("network:\n  rules:\n    - match: '+33'\n      error: 418\n",
         "s.yaml:4: network.rules[0].error: expected one of 400, 401, 403, 404, 429, 500, "
         "503, got 418"),
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
        "expect_request", "request", "advance", "set_clock", "wait", "reset",
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


def problems_of(text: str) -> list[str]:
    with pytest.raises(OtpsimError) as info:
        parse_scenario(text, "s.yaml")
    return str(info.value).splitlines()


def test_every_problem_is_reported_in_file_order() -> None:
    text = (
        "steps:\n"
        "  - jump: 5\n"
        "  - create: {}\n"
        "    as: otp\n"
        "  - hop: {}\n"
        "  - get: {otpId: '{{ otp.otpId }}'}\n"  # fine: 'otp' was saved by a bad-free step
        "  - skip: 1\n"
    )
    problems = problems_of(text)
    assert [p.split(":")[1] for p in problems] == ["2", "5", "7"]
    assert problems[0].startswith("s.yaml:2: steps[0].jump: unknown step 'jump'")
    assert problems[1].startswith("s.yaml:5: steps[2].hop: unknown step 'hop'")
    assert problems[2].startswith("s.yaml:7: steps[4].skip: unknown step 'skip'")


def test_a_step_with_problems_still_saves_its_name_for_later_steps() -> None:
    # One mistake is one line: the later reference to 'otp' is not a second, bogus one.
    text = "steps:\n  - create: {}\n    as: otp\n    expect: {status: 42}\n  - get: {otpId: '{{ otp.otpId }}'}\n"
    assert problems_of(text) == [
        "s.yaml:4: steps[0].expect.status: expected a number from 100 to 599, got 42"
    ]


def test_problems_in_both_halves_and_the_top_level_are_all_reported() -> None:
    text = (
        "name: [a list]\n"
        "network:\n"
        "  rules:\n"
        "    - match: '+33'\n"
        "      error: 418\n"
        "    - match: 'abc'\n"
        "steps:\n"
        "  - wait: 500\n"
        "  - verify: {otpId: x}\n"
    )
    problems = problems_of(text)
    assert [p.split(": ")[0] for p in problems] == [
        "s.yaml:1", "s.yaml:5", "s.yaml:6", "s.yaml:8", "s.yaml:9",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        # The issue: validated "ok", then `run` died with "could not convert string to float".
        ("latest: {otpId: '{{ otp.otpId }}', wait: soon}",
         "s.yaml:4: steps[1].latest.wait: expected a number from 0 to 120, got 'soon'"),
        ("latest: {otpId: '{{ otp.otpId }}', wait: 500}",
         "s.yaml:4: steps[1].latest.wait: expected a number from 0 to 120, got 500"),
        ("expect_callback: {otpId: '{{ otp.otpId }}', count: two}",
         "s.yaml:4: steps[1].expect_callback.count: expected a whole number, got 'two'"),
        ("expect_callback: {otpId: '{{ otp.otpId }}', count: 0}",
         "s.yaml:4: steps[1].expect_callback.count: expected a whole number from 1 to 100000, "
         "got 0"),
        ("expect_callback: {otpId: '{{ otp.otpId }}', within: later}",
         "s.yaml:4: steps[1].expect_callback.within: expected a number from 0 to 120, got "
         "'later'"),
        ("expect_callback: {otpId: '{{ otp.otpId }}', status: verified}",
         "s.yaml:4: steps[1].expect_callback.status: expected one of: VERIFIED, EXPIRED, "
         "CANCELLED, FAILED, got 'verified'"),
        ("request: {method: FETCH, path: /otp}",
         "s.yaml:4: steps[1].request.method: expected one of: GET, POST, PUT, PATCH, DELETE, "
         "HEAD, OPTIONS, got 'FETCH'"),
        ("request: {method: GET, path: otp}",
         "s.yaml:4: steps[1].request.path: expected a path starting with '/', got 'otp'"),
        ("request: {method: GET, path: /otp, headers: [a]}",
         "s.yaml:4: steps[1].request.headers: expected a mapping, got a list"),
        ("expect_request: {status: 503}",
         "s.yaml:4: steps[1].expect_request: missing field 'path'"),
        ("expect_request: {path: otp}",
         "s.yaml:4: steps[1].expect_request.path: expected a path starting with '/', got 'otp'"),
        ("expect_request: {path: /otp, status: 6xx}",
         "s.yaml:4: steps[1].expect_request.status: expected an HTTP status (e.g. 503) or a "
         "class (e.g. 5xx), got '6xx'"),
        ("expect_request: {path: /otp, status: 700}",
         "s.yaml:4: steps[1].expect_request.status: expected an HTTP status (e.g. 503) or a "
         "class (e.g. 5xx), got 700"),
        ("expect_request: {path: /otp, times: -1}",
         "s.yaml:4: steps[1].expect_request.times: expected a whole number from 0 to 100000, "
         "got -1"),
        ("expect_request: {path: /otp, method: FETCH}",
         "s.yaml:4: steps[1].expect_request.method: expected one of: GET, POST, PUT, PATCH, "
         "DELETE, HEAD, OPTIONS, got 'FETCH'"),
        ("expect_request: {path: /otp, within: soon}",
         "s.yaml:4: steps[1].expect_request.within: expected a number from 0 to 120, got 'soon'"),
        ("expect_request: {path: /otp, colour: red}",
         "s.yaml:4: steps[1].expect_request.colour: unknown key (expected one of: path, method, "
         "status, times, body, phoneNumber, otpId, within)"),
        ("latest: {otpId: '{{ otp.otpId }}', colour: red}",
         "s.yaml:4: steps[1].latest.colour: unknown key (expected one of: phoneNumber, otpId, wait)"),
    ],
)  # fmt: skip
def test_step_values_are_checked_against_the_steps_schema(step: str, expected: str) -> None:
    text = f"steps:\n  - create: {{}}\n    as: otp\n  - {step}\n"
    assert problems_of(text) == [expected]


def test_template_values_are_checked_when_run_not_before() -> None:
    # A template's type is only known once rendered: validate accepts it, run checks it.
    text = (
        "steps:\n  - create: {}\n    as: otp\n"
        "  - latest: {otpId: '{{ otp.otpId }}', wait: '{{ otp.ttl }}'}\n"
        "  - request: {method: '{{ otp.method }}', path: '/otp/{{ otp.otpId }}'}\n"
        "  - expect_callback: {status: '{{ otp.status }}', count: '{{ otp.n }}'}\n"
    )
    assert [s.kind for s in parse_scenario(text, "s.yaml").steps] == [
        "create", "latest", "request", "expect_callback",
    ]  # fmt: skip


def test_several_problems_in_one_step_are_each_a_line() -> None:
    text = "steps:\n  - latest:\n      otpId: [1]\n      wait: soon\n      colour: red\n"
    assert problems_of(text) == [
        "s.yaml:3: steps[0].latest.otpId: expected text, got a list",
        "s.yaml:4: steps[0].latest.wait: expected a number from 0 to 120, got 'soon'",
        "s.yaml:5: steps[0].latest.colour: unknown key (expected one of: phoneNumber, otpId, wait)",
    ]


def test_rules_on_other_endpoints_and_connection_faults_parse() -> None:
    from otpsim.engine.network import Endpoint, FaultKind

    scenario = parse_scenario(
        """
network:
  rules:
    - match: "+33612345678"
      on: [verify, status]
      sequence: [{error: 503}, {fault: hang, hang: 5}, {ok: true, latency: 0.2}]
    - match: my-app*
      on: token
      fault: reset
    - match: "*"
      fault: truncated
""",
        "s.yaml",
    )
    assert scenario.network is not None
    verify, token, create = scenario.network.carrier.rules
    assert verify.on == {Endpoint.VERIFY, Endpoint.STATUS}
    assert [(f.action, f.status) for f in verify.steps[:1]] == [(Action.ERROR, 503)]
    assert (verify.steps[1].fault, verify.steps[1].hang) == (FaultKind.HANG, 5)
    assert (verify.steps[2].action, verify.steps[2].latency) == (Action.DELIVER, 0.2)
    assert (token.match, token.on, token.steps[0].fault) == (
        "my-app*", {Endpoint.TOKEN}, FaultKind.RESET)  # fmt: skip
    assert create.on == {Endpoint.CREATE}
    assert create.steps[0].fault is FaultKind.TRUNCATED
    shown = scenario.network.to_json()["rules"]
    assert shown[0]["on"] == ["verify", "status"]
    assert shown[1] == {"match": "my-app*", "on": ["token"], "action": "fault", "fault": "reset"}
    assert "on" not in shown[2]  # create, the default, as before


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("network:\n  rules:\n    - match: '*'\n      on: send\n",
         "s.yaml:4: network.rules[0].on: expected one of: create, verify, status, cancel, "
         "token (or a list), got 'send'"),
        ("network:\n  rules:\n    - match: '*'\n      on: [verify, 5]\n",
         "s.yaml:4: network.rules[0].on[1]: expected one of"),
        ("network:\n  rules:\n    - match: '*'\n      on: []\n",
         "s.yaml:4: network.rules[0].on: expected one of"),
        ("network:\n  rules:\n    - match: '*'\n      on: verify\n      undelivered: true\n",
         "s.yaml:5: network.rules[0].undelivered: 'undelivered' is about the SMS: only with "
         "'on: create'"),
        ("network:\n  rules:\n    - match: '*'\n      on: [create, cancel]\n      delay: 5\n",
         "s.yaml:5: network.rules[0].delay: 'delay' is about the SMS"),
        ("network:\n  rules:\n    - match: '*'\n      on: status\n      sequence:\n"
         "        - reject: true\n",
         "s.yaml:6: network.rules[0].sequence[0].reject: 'reject' is about the SMS"),
        ("network:\n  rules:\n    - match: '*'\n      fault: explode\n",
         "s.yaml:4: network.rules[0].fault: expected one of: reset, hang, truncated, garbage, "
         "got 'explode'"),
        ("network:\n  rules:\n    - match: '*'\n      fault: reset\n      hang: 3\n",
         "s.yaml:5: network.rules[0].hang: 'hang' goes with 'fault: hang'"),
        ("network:\n  rules:\n    - match: '*'\n      fault: hang\n      hang: -1\n",
         "s.yaml:5: network.rules[0].hang: expected a number from 0 to 3600, got -1"),
        ("network:\n  rules:\n    - match: '*'\n      fault: hang\n      error: 500\n",
         "s.yaml:3: network.rules[0]: expected one action, got error, fault"),
        ("network:\n  rules:\n    - match: '*'\n      ok: false\n",
         "s.yaml:4: network.rules[0].ok: expected true, got false"),
        ("network:\n  rules:\n    - match: {regex: '(['}\n      on: token\n",
         "s.yaml:3: network.rules[0].match: invalid regular expression"),
        ("network:\n  rules:\n    - match: app\n      on: [token, verify]\n",
         "s.yaml:3: network.rules[0].match: expected an E.164 number or a prefix"),
    ],
)  # fmt: skip
def test_endpoint_and_fault_errors_name_file_line_and_what_was_expected(
    text: str, expected: str
) -> None:
    assert expected in error_of(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("network:\n  rules:\n    - match: '*'\n      error: 500\n      retry_after: 3\n",
         "s.yaml:5: network.rules[0].retry_after: 'retry_after' goes with a 429 (error: 429)"),
        ("network:\n  rules:\n    - match: '*'\n      error: 429\n      retry_after: 1.5\n",
         "s.yaml:5: network.rules[0].retry_after: expected a whole number, got 1.5"),
        ("network:\n  rules:\n    - match: '*'\n      rate_limit: true\n      retry_after: 4000\n",
         "s.yaml:5: network.rules[0].retry_after: expected a whole number from 0 to 3600"),
    ],
)  # fmt: skip
def test_retry_after_errors(text: str, expected: str) -> None:
    assert expected in error_of(text)


def test_every_problem_inside_one_network_block_is_reported() -> None:
    text = """network:
  seed: -1
  magic_numbers: maybe
  clock: {frozen: sometimes, start: yesterday}
  defaults: {ttl: 5, pinLength: 99, colour: blue}
  rate_limit: {limit: 0, window: -1}
  balance: lots
  fixed_pins:
    - {match: "+33612345678", pin: 123456}
    - {match: "not a number", pin: "12"}
"""
    problems = problems_of(text)
    where = [p.split(": ")[0] + ": " + p.split(": ")[1] for p in problems]
    assert where == [
        "s.yaml:2: network.seed",
        "s.yaml:3: network.magic_numbers",
        "s.yaml:4: network.clock.frozen",
        "s.yaml:4: network.clock.start",
        "s.yaml:5: network.defaults.colour",  # on one line: in the order found
        "s.yaml:5: network.defaults.ttl",
        "s.yaml:5: network.defaults.pinLength",
        "s.yaml:6: network.rate_limit.limit",
        "s.yaml:6: network.rate_limit.window",
        "s.yaml:7: network.balance",
        "s.yaml:9: network.fixed_pins[0].pin",
        "s.yaml:10: network.fixed_pins[1].match",
        "s.yaml:10: network.fixed_pins[1].pin",
    ]


def test_every_problem_inside_one_rule_is_reported() -> None:
    text = """network:
  rules:
    - match: "+33612345678"
      chance: 2
      note: [a list]
      latency: -1
      deliver: {delay: soon}
      colour: blue
    - sequence:
        - {error: 418}
        - {reject: yes please, delay: 5}
"""
    problems = problems_of(text)
    where = [p.split(": ")[0] + ": " + p.split(": ")[1] for p in problems]
    assert where == [
        "s.yaml:4: network.rules[0].chance",
        "s.yaml:5: network.rules[0].note",
        "s.yaml:6: network.rules[0].latency",
        "s.yaml:7: network.rules[0].deliver.delay",
        "s.yaml:8: network.rules[0].colour",
        "s.yaml:9: network.rules[1]",
        "s.yaml:10: network.rules[1].sequence[0].error",
        "s.yaml:11: network.rules[1].sequence[1].delay",
        "s.yaml:11: network.rules[1].sequence[1].reject",
    ]
