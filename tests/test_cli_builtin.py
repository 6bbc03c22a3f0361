"""The scenarios shipped inside the package, named from the CLI (``builtin:NAME``).

Every command runs from an empty folder: a CI job's checkout has no ``scenarios/``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from support import call
from test_cli import run

SHIPPED = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "scenarios").glob("*.yaml"))


def test_run_one_builtin_scenario_by_name(tmp_path: Path) -> None:
    done = run("run", "builtin:expiry", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("scenarios: 1 passed, 0 failed")


def test_run_every_builtin_scenario_with_a_junit_report(tmp_path: Path) -> None:
    done = run("run", "--builtin", "--junit", "report.xml", cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith(f"scenarios: {len(SHIPPED)} passed, 0 failed")
    suite = ET.parse(tmp_path / "report.xml").getroot().find("testsuite")
    assert suite is not None
    assert suite.get("tests") == str(len(SHIPPED))


def test_an_unknown_builtin_name_is_one_line_listing_the_names(tmp_path: Path) -> None:
    done = run("run", "builtin:expirey", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "builtin:expirey: no such built-in scenario (expected one of: " in done.stderr
    assert "expiry" in done.stderr


def test_run_needs_a_file_or_builtin(tmp_path: Path) -> None:
    done = run("run", cwd=tmp_path)
    assert done.returncode == 2
    assert "FILE_OR_DIR" in done.stderr


def test_validate_builtin(tmp_path: Path) -> None:
    done = run("validate", "--builtin", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == len(SHIPPED)


def test_scenarios_list_names_and_describes_each(tmp_path: Path) -> None:
    done = run("scenarios", "list", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [f"builtin:{name}" for name in SHIPPED]
    assert any("late PINs are refused" in line for line in lines)


def test_scenarios_copy_starts_a_folder_of_ones_own(tmp_path: Path) -> None:
    done = run("scenarios", "copy", "mine", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    copied = sorted(p.stem for p in (tmp_path / "mine").glob("*.yaml"))
    assert copied == SHIPPED
    assert run("validate", "mine", cwd=tmp_path).returncode == 0
    # Copying again changes nothing...
    assert run("scenarios", "copy", "mine", cwd=tmp_path).returncode == 0
    # ...and an edited copy is never overwritten by accident...
    edited = tmp_path / "mine" / "expiry.yaml"
    edited.write_text("steps:\n  - advance: 1\n")
    again = run("scenarios", "copy", "mine", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr == (
        f"otpsim: error: {Path('mine') / 'expiry.yaml'}: already exists and differs "
        "from builtin:expiry (expected a new folder, or --force to overwrite)\n"
    )
    assert edited.read_text() == "steps:\n  - advance: 1\n"
    # ...only on request.
    assert run("scenarios", "copy", "mine", "--force", cwd=tmp_path).returncode == 0
    assert "late PINs" in edited.read_text()


def test_serve_with_a_builtin_scenario(start_server: Any) -> None:
    _, base = start_server("--scenario", "builtin:provider_errors")
    status, body = call("POST", f"{base}/otp", {"phoneNumber": "+33612345678"}, {"X-API-KEY": "k"})
    assert (status, body["error"]["type"]) == (500, "server_error")
