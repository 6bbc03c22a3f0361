"""``otpsim run``, ``otpsim validate`` and ``serve --scenario`` as CI runs them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from support import call
from test_cli import run

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
FAILING = "name: failing\nsteps:\n  - create: {phoneNumber: '+3361234'}\n"


def test_every_ready_made_scenario_passes_with_a_junit_report(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    done = run("run", str(SCENARIOS), "--junit", str(report), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted(SCENARIOS.glob("*.yaml"))
    assert done.stdout.strip().endswith(f"scenarios: {len(files)} passed, 0 failed")
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("tests") == str(len(files))
    assert suite.get("failures") == "0"


def test_a_failing_scenario_exits_1_and_shows_expected_vs_got(tmp_path: Path) -> None:
    path = tmp_path / "failing.yaml"
    path.write_text(FAILING)
    done = run("run", str(path))
    assert done.returncode == 1
    assert "FAIL  1 create: expected success, got 400 invalid_param 2020" in done.stdout
    assert done.stdout.strip().endswith("scenarios: 0 passed, 1 failed")


def test_nothing_runs_when_any_file_is_malformed(tmp_path: Path) -> None:
    (tmp_path / "a_good.yaml").write_text("steps:\n  - advance: 1\n")
    (tmp_path / "b_bad.yaml").write_text("steps:\n  - advance: 1\n  - jump: 5\n")
    done = run("run", str(tmp_path))
    assert done.returncode == 2
    assert done.stdout == ""  # not even the good one ran
    assert done.stderr.strip() == (
        f"otpsim: error: {tmp_path / 'b_bad.yaml'}:3: steps[1].jump: unknown step 'jump' "
        "(expected one of: create, get, verify, cancel, latest, messages, expect_callback, "
        "request, advance, set_clock, wait, reset)"
    )


def test_validate(tmp_path: Path) -> None:
    done = run("validate", str(SCENARIOS / "expiry.yaml"), str(SCENARIOS / "undelivered.yaml"))
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        f"ok: {SCENARIOS / 'expiry.yaml'} (10 steps, a network with 0 rule(s))",
        f"ok: {SCENARIOS / 'undelivered.yaml'} (7 steps, a network with 1 rule(s))",
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("network:\n  rules:\n    - match: '+33'\n      error: 418\n")
    done = run("validate", str(bad))
    assert done.returncode == 2
    assert f"{bad}:4: network.rules[0].error: expected 500 or 503, got 418" in done.stderr


def test_run_against_a_separately_started_server(start_server: Any) -> None:
    _, base = start_server()
    done = run("run", str(SCENARIOS), "--target", base, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scenarios: 10 passed, 0 failed" in done.stdout
    # The target is left without the last scenario's network rules.
    assert call("GET", f"{base}/_sim/scenario")[1]["active"] is False


def test_serve_with_a_scenario(start_server: Any, tmp_path: Path) -> None:
    path = tmp_path / "down.yaml"
    path.write_text("network:\n  rules:\n    - match: '*'\n      error: 503\n")
    _, base = start_server("--scenario", str(path))
    status, body = call("POST", f"{base}/otp", {"phoneNumber": "+33612345678"}, {"X-API-KEY": "k"})
    assert (status, body["error"]["type"]) == (503, "server_error")


def test_serve_with_a_bad_scenario_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("network:\n  rules: 5\n")
    done = run("serve", "--port", "0", "--scenario", str(path))
    assert done.returncode == 2
    assert f"{path}:2: network.rules: expected a list of rules" in done.stderr


def test_run_and_tail_against_a_server_with_an_admin_token(start_server: Any) -> None:
    _, base = start_server("--admin-token", "adm")
    expiry = str(SCENARIOS / "expiry.yaml")
    refused = run("run", expiry, "--target", base)
    assert refused.returncode == 1
    assert "asks for its admin token" in refused.stdout
    done = run("run", expiry, "--target", base, "--admin-token", "adm")
    assert done.returncode == 0, done.stdout


def test_serving_beyond_loopback_without_an_admin_token_exits_2() -> None:
    done = run("serve", "--host", "0.0.0.0", "--port", "0")
    assert done.returncode == 2
    assert "needs --admin-token" in done.stderr
