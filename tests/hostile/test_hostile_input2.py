"""Hostile scenario input, round 2: aliases that expand to gigabytes of text, scalar
fields given lists, and templates whose output bound `|string`, `~` and `+` went around.

Subprocesses that would blow up on unfixed code run under a 1 GiB address-space limit
and a timeout, so a regression fails the test, not the machine; in-process cases are
small enough that unfixed code merely answers wrongly.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jinja2
import pytest
from support import (
    expect_error,
    launch,
    limited,
    one_error_line,
    put_scenario,
    run_limited,
    stop,
)

from otpsim.errors import OtpsimError
from otpsim.scenario.model import parse_scenario
from otpsim.scenario.templates import render


def str_bomb(strlen: int, last: int) -> str:
    """The attacker's document: one long anchored string, and lists of lists of aliases to
    it under ``description`` (11,110 + 10,000 * ``last`` copies), which str() expanded."""
    s = "x" * strlen

    def ten(name: str) -> str:
        return "[" + ",".join([f"*{name}"] * 10) + "]"

    tail = "" if not last else ", [" + ",".join(["*d"] * last) + "]"
    return (
        f'name: &s "{s}"\n'
        f"description: [&a {ten('s')}, &b {ten('a')}, &c {ten('b')}, &d {ten('c')}{tail}]\n"
        "network: {rules: []}\n"
    )


EXPANDS = "the document expands to more than 4 MiB of text (aliases included)"


def problem(text: str) -> str:
    with pytest.raises(OtpsimError) as caught:
        parse_scenario(text, "s.yaml")
    return str(caught.value)


# -- item 1: aliases counted by the text they expand to ----------------------------------


def test_put_scenario_refuses_the_attackers_60_kb_body_and_keeps_serving(tmp_path: Path) -> None:
    body = str_bomb(60_000, 7).encode()
    assert len(body) < 64 * 1024  # within the default body limit: it reaches the parser
    proc, base = launch(tmp_path, preexec_fn=limited)
    try:
        started = time.monotonic()
        status, answer = put_scenario(base, body, timeout=60)
        took = time.monotonic() - started
        assert status == 400, answer
        assert answer["error"]["code"] == 1023
        assert answer["error"]["message"] == f"<request body>:2: invalid YAML: {EXPANDS}"
        assert took < 5.0  # generous: it is refused while reading, in milliseconds
        with urllib.request.urlopen(base + "/_sim/health", timeout=5) as response:
            assert response.status == 200
    finally:
        stop(proc)


async def test_put_scenario_refuses_a_small_text_bomb_with_the_error_shape(client: Any) -> None:
    body = str_bomb(5_000, 0)  # 11,110 copies of 5,000 characters: 55 MB from 55 KB
    resp = await client.put("/_sim/scenario", data=body.encode())
    err = await expect_error(resp, 400, "invalid_scenario", 1023)
    assert err["message"] == f"<request body>:2: invalid YAML: {EXPANDS}"
    assert (await (await client.get("/_sim/scenario")).json())["active"] is False


def test_validate_refuses_a_one_mib_text_bomb_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(str_bomb(900_000, 7))
    line = one_error_line(run_limited("validate", "bomb.yaml", cwd=tmp_path))
    assert line == f"otpsim: error: bomb.yaml:2: invalid YAML: {EXPANDS}"


def test_a_one_mib_document_and_a_few_aliases_of_long_text_still_load() -> None:
    note = "n" * 200
    rules = "".join(f"    - {{match: '+{i}*', reject: true, note: *n}}\n" for i in range(1000))
    text = f"network:\n  rules:\n    - {{match: '+9*', reject: true, note: &n '{note}'}}\n{rules}"
    text += "# " + "x" * (1024 * 1024 - len(text) - 10) + "\n"
    scenario = parse_scenario(text, "s.yaml")
    assert scenario.network is not None
    assert len(scenario.network.carrier.rules) == 1001
    assert scenario.network.carrier.rules[-1].note == note


# -- item 1: every scalar field is type-checked and bounded, never str()'d ----------------

LIST = "[a, b]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"name: {LIST}\nnetwork: {{}}\n", "s.yaml:1: name: expected text, got a list"),
        (f"description: {LIST}\nnetwork: {{}}\n", "s.yaml:1: description: expected text, got a list"),
        ("description: {a: 1}\nnetwork: {}\n", "s.yaml:1: description: expected text, got a mapping"),
        (f"network:\n  rules:\n    - {{match: '+33*', note: {LIST}}}\n",
         "s.yaml:3: network.rules[0].note: expected text, got a list"),
        (f"network:\n  clock: {{start: {LIST}}}\n",
         "s.yaml:2: network.clock.start: expected an ISO 8601 time, got a list"),
        (f"steps:\n  - name: {LIST}\n    reset: true\n", "s.yaml:2: steps[0].name: expected text, got a list"),
        (f"steps:\n  - get: {{otpId: {LIST}}}\n", "s.yaml:2: steps[0].get.otpId: expected text, got a list"),
        (f"steps:\n  - cancel: {{otpId: {LIST}}}\n",
         "s.yaml:2: steps[0].cancel.otpId: expected text, got a list"),
        (f"steps:\n  - request: {{method: {LIST}, path: /x}}\n",
         "s.yaml:2: steps[0].request.method: expected text, got a list"),
        (f"steps:\n  - request: {{method: GET, path: {LIST}}}\n",
         "s.yaml:2: steps[0].request.path: expected text, got a list"),
        (f"steps:\n  - request: {{method: GET, path: /x, headers: {{X-A: {LIST}}}}}\n",
         "s.yaml:2: steps[0].request.headers.X-A: expected text, got a list"),
        (f"steps:\n  - set_clock: {LIST}\n", "s.yaml:2: steps[0].set_clock: expected text, got a list"),
        (f"steps:\n  - reset: true\n    expect: {{error: {{message: {LIST}}}}}\n",
         "s.yaml:3: steps[0].expect.error.message: expected text, got a list"),
        (f"api_key: {LIST}\nnetwork: {{}}\n", "s.yaml:1: api_key: expected text, got a list"),
    ],
)  # fmt: skip
def test_a_text_field_given_a_list_or_mapping_is_an_error(text: str, expected: str) -> None:
    assert problem(text) == expected


@pytest.mark.parametrize(
    ("key", "text", "limit"),
    [
        ("name", "name: {}\nnetwork: {{}}\n", 200),
        ("description", "description: {}\nnetwork: {{}}\n", 4096),
        ("network.rules[0].note", "network:\n  rules:\n    - {{match: '+33*', note: {}}}\n", 500),
        ("steps[0].name", "steps:\n  - {{name: {}, reset: true}}\n", 200),
        ("steps[0].get.otpId", "steps:\n  - get: {{otpId: {}}}\n", 4096),
    ],
)
def test_text_fields_are_length_bounded(key: str, text: str, limit: int) -> None:
    assert parse_scenario(text.format("a" * limit), "s.yaml") is not None
    message = problem(text.format("a" * (limit + 1)))
    assert message.endswith(f"{key}: expected at most {limit:,} characters, got {limit + 1:,}")


def test_plain_scalars_keep_working_where_text_is_expected() -> None:
    text = (
        "name: 2024\ndescription: 3.5\nnetwork:\n  clock: {start: 2030-01-01T00:00:00Z}\n"
        "  rules:\n    - {match: '+33*', note: 7}\n"
        "steps:\n  - {name: 1, get: {otpId: 12}}\n"
        "  - {request: {method: GET, path: /_sim/health, headers: {X-N: 5}}}\n"
    )
    scenario = parse_scenario(text, "s.yaml")
    assert (scenario.name, scenario.description) == ("2024", "3.5")
    assert scenario.network is not None
    assert scenario.network.clock_start == 1893456000.0
    assert scenario.network.carrier.rules[0].note == "7"
    assert scenario.steps[0].name == "1"


# -- item 2: templates are measured with their elements, before anything is built ---------

BIG = "('x' * 99999)"


@pytest.mark.parametrize(
    ("template", "operator"),
    [
        (f"{{{{ ([{BIG}] * 50) | string }}}}", "'*'"),  # unfixed: a 5 MB string
        (f"{{{{ [[{BIG}] * 1] * 2 }}}}", "'*'"),  # unfixed: a list str() makes 200 KB of
        (f"{{{{ {BIG} ~ {BIG} }}}}", "'~'"),  # unfixed: built, then measured
        (f"{{{{ [{BIG}] ~ '' }}}}", "'~'"),
        (f"{{{{ {BIG} + {BIG} }}}}", "'+'"),
        (f"{{{{ [{BIG}] + [{BIG}] }}}}", "'+'"),
        (f"{{{{ [{BIG}, {BIG}] | string }}}}", "'|string'"),
        (f"{{{{ [{BIG}, {BIG}] | upper }}}}", "'|upper'"),
        (f"{{{{ ({BIG} | list) | string }}}}", "'|string'"),
    ],
)
def test_growth_is_refused_before_it_is_built(template: str, operator: str) -> None:
    with pytest.raises(jinja2.exceptions.SecurityError) as caught:
        render(template, {})
    assert str(caught.value).startswith(f"{operator} would make more than 100,000 characters")


@pytest.mark.parametrize(
    "template",
    [
        f"{{{{ [{BIG}, {BIG}] }}}}",  # a list: the runner str()s it into a header or a path
        f"a {{{{ [{BIG}, {BIG}] }}}}",
        f"{{{{ {{'a': {BIG}, 'b': {BIG}}} }}}}",
    ],
)
def test_a_value_too_large_to_print_is_refused(template: str) -> None:
    with pytest.raises(jinja2.exceptions.SecurityError, match="makes more than 100,000"):
        render(template, {})


def test_ordinary_templates_still_render() -> None:
    context = {"otp": {"otpId": "abc", "ttl": 60}, "msgs": [{"pin": "1"}] * 3000}
    assert render("{{ otp.otpId ~ '-' ~ otp.ttl }}", context) == "abc-60"
    assert render("{{ 'ab' * 3 + 'c' }}", context) == "abababc"
    assert render("{{ [1, 2] + [3] }}", context) == [1, 2, 3]
    assert render("{{ msgs | length }}", context) == 3000
    assert render("id={{ otp.otpId | upper }}", context) == "id=ABC"
    assert render("{{ 'x' * 90000 }}", context) == "x" * 90000
    assert render("{{ '{{pin}}' }}", context) == "{{pin}}"


def test_run_stops_the_attackers_string_filter_bomb(tmp_path: Path) -> None:
    text = (
        "steps:\n  - request: {method: GET, path: /_sim/health, headers: "
        "{X-A: \"{{ ([('x' * 99999)] * 99999) | string }}\"}}\n"
    )
    (tmp_path / "tbomb.yaml").write_text(text)
    done = run_limited("run", "tbomb.yaml", cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr  # an error (the step crashed)
    assert "ERR   1 request: SecurityError: '*' would make more than 100,000" in done.stdout
