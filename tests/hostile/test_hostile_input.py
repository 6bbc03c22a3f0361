"""Hostile scenario, config and template input (issue #12 items 2, 9, 10 and the low ones).

Every YAML entry point (``PUT /_sim/scenario``, ``otpsim validate``/``run``,
``serve --scenario``, config files) must refuse alias bombs, deep nesting and huge
integers with one clear error; carrier regexes run in linear time; scenario templates
cannot reach Python. Subprocesses that would blow up on unfixed code run under a 1 GiB
address-space limit and a timeout, so a regression fails the test, not the machine.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from support import (
    KEY,
    expect_error,
    launch,
    limited,
    one_error_line,
    put_scenario,
    run_limited,
    stop,
)

from otpsim.config import load_settings
from otpsim.errors import OtpsimError


def bomb(levels: int = 8, aliases: int = 9) -> str:
    """A billion-laughs document: each anchor is a list of ``aliases`` of the previous."""
    names = "abcdefgh"[:levels]
    lines = ["# the billion laughs", "a: &a [" + ",".join(['"lol"'] * aliases) + "]"]
    for previous, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * aliases) + "]")
    return "\n".join(lines) + "\n"


BOMB = bomb()  # the issue's 328-byte document: 8 anchors of 9 aliases (~43 million values)
SMALL_BOMB = bomb(6, 7)  # 117,649 values: over the limit, yet cheap to accept by mistake
DEEP_YAML = "network:\n  rules:\n    - match: '*'\n      note: " + "[" * 600 + "]" * 600 + "\n"
DEEP_JSON = '{"network": {"rules": [{"match": "*", "note": ' + "[" * 600 + "]" * 600 + "}]}}"
REDOS = r"^(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*\D$"
HUGE = "1" * 5000


# -- item 2: alias bombs, through every YAML entry point -----------------------------------


def test_the_bomb_is_the_issues_328_bytes() -> None:
    assert len(BOMB.encode()) == 328
    assert BOMB.count("&") == 8


def test_put_scenario_refuses_the_alias_bomb_in_milliseconds_and_keeps_serving(
    tmp_path: Path,
) -> None:
    proc, base = launch(tmp_path, preexec_fn=limited)
    try:
        started = time.monotonic()
        status, body = put_scenario(base, BOMB, timeout=20)
        took = time.monotonic() - started
        assert status == 400, body
        assert body["error"]["code"] == 1023
        assert "expands to more than 100,000 values (aliases included)" in body["error"]["message"]
        assert took < 2.0  # generous: it takes milliseconds (bench/hostile_yaml.py)
        with urllib.request.urlopen(base + "/_sim/health", timeout=5) as response:
            assert response.status == 200
    finally:
        stop(proc)


async def test_put_scenario_refuses_a_smaller_bomb_with_the_error_shape(client: Any) -> None:
    resp = await client.put("/_sim/scenario", data=SMALL_BOMB.encode())
    err = await expect_error(resp, 400, "invalid_scenario", 1023)
    assert err["message"] == (
        "<request body>:7: invalid YAML: the document expands to more than 100,000 values "
        "(aliases included)"
    )
    assert (await (await client.get("/_sim/scenario")).json())["active"] is False


def test_validate_refuses_the_alias_bomb_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(BOMB)
    started = time.monotonic()
    line = one_error_line(run_limited("validate", "bomb.yaml", cwd=tmp_path))
    assert time.monotonic() - started < 20  # generous: a process start, then milliseconds
    assert line == (
        "otpsim: error: bomb.yaml:7: invalid YAML: the document expands to more than "
        "100,000 values (aliases included)"
    )


def test_serve_scenario_and_config_refuse_the_alias_bomb(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(BOMB)
    for args in (["--scenario", "bomb.yaml"], ["--config", "bomb.yaml"]):
        line = one_error_line(run_limited("serve", "--port", "0", *args, cwd=tmp_path))
        assert line.startswith("otpsim: error: bomb.yaml:7: invalid YAML: the document expands")


def test_a_config_file_alias_bomb_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "otpsim.yaml"
    path.write_text(SMALL_BOMB)
    with pytest.raises(OtpsimError, match=r"otpsim\.yaml:7: invalid YAML: the document expands"):
        load_settings(config_path=str(path), env={})


def test_an_alias_inside_itself_is_refused(tmp_path: Path) -> None:
    (tmp_path / "loop.yaml").write_text("network:\n  rules: &r\n    - match: '*'\n      note: *r\n")
    line = one_error_line(run_limited("validate", "loop.yaml", cwd=tmp_path))
    assert (
        line
        == "otpsim: error: loop.yaml:4: invalid YAML: alias *r refers to a node that contains it"
    )


def test_a_few_aliases_still_work(tmp_path: Path) -> None:
    text = (
        "network:\n  rules:\n    - match: '+33*'\n      sequence: &twice [{error: 500}, {error: 500}]\n"
        "    - match: '+44*'\n      sequence: *twice\n"
    )
    (tmp_path / "ok.yaml").write_text(text)
    done = run_limited("validate", "ok.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok: ok.yaml (a network with 2 rule(s))"


# -- low: nesting 600 deep ---------------------------------------------------------------


async def test_put_scenario_refuses_json_nested_600_deep(client: Any) -> None:
    resp = await client.put(
        "/_sim/scenario", data=DEEP_JSON, headers={"Content-Type": "application/json"}
    )
    err = await expect_error(resp, 400, "invalid_scenario", 1023)
    assert err["message"] == "<request body>:1: invalid YAML: nested more than 64 levels deep"


def test_validate_and_config_refuse_yaml_nested_600_deep(tmp_path: Path) -> None:
    (tmp_path / "deep.yaml").write_text(DEEP_YAML)
    line = one_error_line(run_limited("validate", "deep.yaml", cwd=tmp_path))
    assert line == "otpsim: error: deep.yaml:4: invalid YAML: nested more than 64 levels deep"
    path = tmp_path / "otpsim.yaml"
    path.write_text("defaults: " + "[" * 600 + "]" * 600 + "\n")
    with pytest.raises(OtpsimError, match=r"otpsim\.yaml:1: invalid YAML: nested more than 64"):
        load_settings(config_path=str(path), env={})


async def test_put_scenario_refuses_a_template_nested_600_deep(client: Any) -> None:
    template = "{{ " + "(" * 600 + "1" + ")" * 600 + " }}"
    body = json.dumps({"network": {"rules": []}, "steps": [{"create": {"ttl": template}}]})
    resp = await client.put("/_sim/scenario", data=body)
    err = await expect_error(resp, 400, "invalid_scenario", 1023)
    assert err["message"].startswith("<request body>:1: steps[0].create: bad template")
    assert err["message"].endswith("nested more than 32 levels deep")


# -- item 9: ReDoS through a carrier rule -------------------------------------------------


async def test_a_catastrophic_regex_rule_does_not_stall_post_otp(client: Any) -> None:
    scenario = {"network": {"rules": [{"match": {"regex": REDOS}, "error": 503}]}}
    resp = await client.put("/_sim/scenario", data=json.dumps(scenario))
    assert resp.status == 200, await resp.text()
    started = time.monotonic()
    resp = await client.post("/otp", json={"phoneNumber": "+33612345678"}, headers=KEY)
    assert resp.status == 201, await resp.text()  # no non-digit at the end: no match
    assert time.monotonic() - started < 2.0  # generous: Python's re took ~10 s here


async def test_a_regex_rule_re2_cannot_run_is_a_400(client: Any) -> None:
    scenario = "network:\n  rules:\n    - match: {regex: '(\\d)\\1'}\n      reject: true\n"
    resp = await client.put("/_sim/scenario", data=scenario)
    err = await expect_error(resp, 400, "invalid_scenario", 1023)
    assert err["message"].startswith(
        "<request body>:3: network.rules[0].match: invalid regular expression: "
        "invalid escape sequence: \\1"
    )


# -- item 10: templates cannot reach Python, and stay small -------------------------------


def test_run_cannot_execute_code_from_a_scenario(tmp_path: Path) -> None:
    evil = (
        "steps:\n  - advance: 1\n"
        "  - get: {otpId: \"{{ cycler.__init__.__globals__.os.system('touch pwned') }}\"}\n"
    )
    (tmp_path / "evil.yaml").write_text(evil)
    for command in ("run", "validate"):
        done = run_limited(command, "evil.yaml", cwd=tmp_path)
        assert not (tmp_path / "pwned").exists(), f"otpsim {command} ran the scenario's code"
        line = one_error_line(done)
        assert line.startswith("otpsim: error: evil.yaml:3: steps[1].get: bad template")
        assert line.endswith("calling functions or methods is not allowed")


def test_validate_names_template_statements_and_private_attributes(tmp_path: Path) -> None:
    cases = {
        "{% for i in range(9) %}x{% endfor %}": "only {{ expressions }} are allowed",
        "{{ otp.__class__ }}": "private attribute '__class__' is not allowed",
        "{{ 'x'|center(999999999) }}": "filter 'center' is not available",
        "{{ lipsum(99999) }}": "calling functions or methods is not allowed",
    }
    for template, expected in cases.items():
        text = (
            "steps:\n  - create: {}\n    as: otp\n  - get: {otpId: " + json.dumps(template) + "}\n"
        )
        (tmp_path / "t.yaml").write_text(text)
        line = one_error_line(run_limited("validate", "t.yaml", cwd=tmp_path))
        assert line.startswith("otpsim: error: t.yaml:4: steps[1].get: bad template"), line
        assert expected in line, line


def test_run_stops_a_string_multiplication_blowup(tmp_path: Path) -> None:
    text = "steps:\n  - create: {phoneNumber: \"{{ '+3' * 999999999 }}\"}\n"
    (tmp_path / "blow.yaml").write_text(text)
    done = run_limited("run", "blow.yaml", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr  # an error (the step crashed)
    assert "ERR   1 create: SecurityError: '*' would make more than 100,000" in done.stdout


# -- low: a 5,000-digit seed ------------------------------------------------------------


async def test_put_scenario_refuses_a_huge_seed(client: Any) -> None:
    resp = await client.put("/_sim/scenario", data=f"network:\n  seed: {HUGE}\n")
    err = await expect_error(resp, 400, "invalid_scenario", 1023)
    assert err["message"] == "<request body>:2: invalid YAML: integer with more than 100 digits"
    resp = await client.put("/_sim/scenario", data=f"network:\n  seed: {2**70}\n")
    err = await expect_error(resp, 400, "invalid_scenario", 1023)
    assert err["message"] == (
        "<request body>:2: network.seed: expected a whole number from 0 to 18446744073709551615"
    )


def test_seed_flag_and_config_refuse_a_huge_seed(tmp_path: Path) -> None:
    line = one_error_line(run_limited("serve", "--port", "0", "--seed", HUGE, cwd=tmp_path))
    assert line == "otpsim: error: --seed: expected an integer of at most 30 digits"
    (tmp_path / "otpsim.yaml").write_text(f"seed: {HUGE}\n")
    line = one_error_line(
        run_limited("serve", "--port", "0", "--config", "otpsim.yaml", cwd=tmp_path)
    )
    assert line == "otpsim: error: otpsim.yaml:1: invalid YAML: integer with more than 100 digits"
    line = one_error_line(run_limited("serve", "--port", "0", "--seed", "-1", cwd=tmp_path))
    assert (
        line
        == "otpsim: error: --seed: expected a whole number from 0 to 18446744073709551615, got -1"
    )
