"""``otpsim run``, ``otpsim validate`` and ``serve --scenario`` as CI runs them."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
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
        "expect_request, request, advance, set_clock, wait, reset)"
    )
    (tmp_path / "c_worse.yaml").write_text("steps:\n  - wait: soon\n  - hop: 1\n")
    done = run("run", str(tmp_path))
    assert done.returncode == 2
    assert done.stdout == ""
    assert [line.split(": ")[2] for line in done.stderr.splitlines()] == [
        f"{tmp_path / 'b_bad.yaml'}:3",
        f"{tmp_path / 'c_worse.yaml'}:2",
        f"{tmp_path / 'c_worse.yaml'}:3",
        "3 problems in 2 files (nothing was run)",
    ]


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
    expected = "expected one of 400, 401, 403, 404, 429, 500, 503, got 418"
    assert f"{bad}:4: network.rules[0].error: {expected}" in done.stderr


def test_run_against_a_separately_started_server(start_server: Any) -> None:
    _, base = start_server()
    done = run("run", str(SCENARIOS), "--target", base, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scenarios: 11 passed, 0 failed" in done.stdout
    # The target is left without the last scenario's network rules.
    assert call("GET", f"{base}/_sim/scenario")[1]["active"] is False


def test_run_against_a_target_resets_every_account_as_the_readme_warns(
    start_server: Any,
) -> None:
    _, base = start_server()
    call("POST", f"{base}/otp", {"phoneNumber": "+33612345678"}, {"X-API-KEY": "a-test-run"})
    done = run("run", str(SCENARIOS / "cancel.yaml"), "--target", base)
    assert done.returncode == 0, done.stdout + done.stderr
    assert call("GET", f"{base}/_sim/otps?account=a-test-run")[1]["otps"] == []
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    shared = readme.split("**A shared simulator.**", 1)[1].split("### Without pytest", 1)[0]
    assert "`otpsim run --target` resets the whole simulator" in shared


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
    assert refused.returncode == 2  # the run could not be set up: an error, not a failure
    assert "asks for its admin token" in refused.stdout
    done = run("run", expiry, "--target", base, "--admin-token", "adm")
    assert done.returncode == 0, done.stdout


def test_serving_beyond_loopback_without_an_admin_token_exits_2() -> None:
    done = run("serve", "--host", "0.0.0.0", "--port", "0")
    assert done.returncode == 2
    assert "needs --admin-token" in done.stderr


def test_validate_reports_every_problem_of_every_file_then_a_count(tmp_path: Path) -> None:
    three = tmp_path / "three.yaml"
    three.write_text(
        "steps:\n  - jump: 5\n  - create: {}\n    as: otp\n"
        "  - latest: {otpId: '{{ otp.otpId }}', wait: soon}\n  - hop: 1\n"
    )
    good = SCENARIOS / "expiry.yaml"
    done = run("validate", str(three), str(good))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"otpsim: error: {three}:2: steps[0].jump: unknown step 'jump' (expected one of: "
        "create, get, verify, cancel, latest, messages, expect_callback, expect_request, request, advance, "
        "set_clock, wait, reset)",
        f"otpsim: error: {three}:5: steps[2].latest.wait: expected a number from 0 to 120, "
        "got 'soon'",
        f"otpsim: error: {three}:6: steps[3].hop: unknown step 'hop' (expected one of: "
        "create, get, verify, cancel, latest, messages, expect_callback, expect_request, request, advance, "
        "set_clock, wait, reset)",
        "otpsim: error: 3 problems in 1 file",
    ]
    assert done.stdout.splitlines() == [f"ok: {good} (10 steps, a network with 0 rule(s))"]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_an_unreachable_target_is_one_error_not_n_failures(
    tmp_path: Path, closed_port: int
) -> None:
    target = f"http://127.0.0.1:{closed_port}"
    report = tmp_path / "report.xml"
    names = ["expiry.yaml", "cancel.yaml", "undelivered.yaml"]
    done = run("run", *(str(SCENARIOS / n) for n in names), "--target", target,
               "--junit", str(report))  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"otpsim: error: cannot reach the target {target}: ")
    assert lines[0].endswith("(3 scenarios not run)")
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("errors"), suite.get("failures")) == ("3", "3", "0")
    for case in suite.findall("testcase"):
        assert case.find("failure") is None
        error = case.find("error")
        assert error is not None
        assert (error.get("message") or "").startswith(f"not run: cannot reach the target {target}")


def test_a_step_that_crashes_is_an_error_exit_2(tmp_path: Path) -> None:
    # A template whose value has the wrong type once rendered: the scenario could not be
    # carried out (an error), which is not the application failing an expectation.
    crash = tmp_path / "crash.yaml"
    crash.write_text(
        "steps:\n  - create: {phoneNumber: '+33612345678'}\n    as: otp\n"
        "  - latest: {otpId: '{{ otp.otpId }}', wait: '{{ otp.status }}'}\n  - advance: 1\n"
    )
    failing = tmp_path / "failing.yaml"
    failing.write_text(FAILING)
    report = tmp_path / "report.xml"
    done = run("run", str(crash), str(failing), "--junit", str(report))
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        f"  ERR   2 latest: {crash}:4: steps[1].latest.wait: expected a number from 0 to 120, "
        "got 'PENDING'"
    ) in done.stdout
    assert "  skip  3 advance: not run" in done.stdout
    assert done.stdout.strip().endswith("scenarios: 0 passed, 1 failed, 1 error")
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("errors"), suite.get("failures")) == ("2", "1", "1")
    crashed, failed = suite.findall("testcase")
    assert crashed.find("error") is not None
    assert crashed.find("failure") is None
    assert failed.find("failure") is not None
    assert failed.find("error") is None


def test_an_expectation_failure_alone_exits_1_with_a_junit_failure(tmp_path: Path) -> None:
    path = tmp_path / "failing.yaml"
    path.write_text(FAILING)
    report = tmp_path / "report.xml"
    done = run("run", str(path), "--junit", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("errors"), suite.get("failures")) == ("0", "1")


def test_validate_reports_a_missing_path_beside_the_other_files_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - hop: 1\n")
    good = SCENARIOS / "expiry.yaml"
    missing = tmp_path / "nonexist.yaml"
    done = run("validate", str(bad), str(good), str(missing))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"otpsim: error: {bad}:2: steps[0].hop: unknown step 'hop' (expected one of: "
        "create, get, verify, cancel, latest, messages, expect_callback, expect_request, request, advance, "
        "set_clock, wait, reset)",
        f"otpsim: error: {missing}: no such file or directory",
        "otpsim: error: 2 problems in 2 files",
    ]
    assert done.stdout.splitlines() == [f"ok: {good} (10 steps, a network with 0 rule(s))"]
