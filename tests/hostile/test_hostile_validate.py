"""Hostile scenario files against "every problem is reported": the report stays small.

Reporting every problem of a file must not turn a small body into a huge answer: each
problem line is ~20 times the few bytes (``- x: 1``) that cause it, so a 270 KB
file listed 30,000 problems in 5 MB, and a 63 KB ``PUT /_sim/scenario`` body (the most
it takes) 7,000 in a 1.3 MB error message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import expect_error
from test_cli import run

from otpsim.errors import OtpsimError
from otpsim.scenario.model import MAX_PROBLEMS, parse_scenario

MANY_BAD_STEPS = "steps:\n" + "  - x: 1\n" * 30_000


def test_the_problems_listed_are_bounded_and_the_rest_counted() -> None:
    with pytest.raises(OtpsimError) as info:
        parse_scenario(MANY_BAD_STEPS, "s.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == MAX_PROBLEMS + 1
    assert lines[0].startswith("s.yaml:2: steps[0].x: unknown step 'x'")  # file order kept
    assert lines[MAX_PROBLEMS - 1].startswith(f"s.yaml:{MAX_PROBLEMS + 1}: ")
    assert lines[-1] == f"s.yaml: {30_000 - MAX_PROBLEMS} more problems not shown"
    assert len(str(info.value)) < 64 * 1024


async def test_put_scenario_answers_a_bounded_list(client: Any) -> None:
    body = "steps:\n" + "  - x: 1\n" * 7_000  # within the 64 KiB a body may have
    resp = await client.put("/_sim/scenario", data=body)
    err = await expect_error(resp, 400, "invalid_scenario", 1023)
    assert len(err["message"]) < 64 * 1024
    assert err["message"].endswith("more problems not shown")


def test_validate_prints_a_bounded_list_and_the_full_count(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(MANY_BAD_STEPS)
    done = run("validate", str(path), timeout=120)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == MAX_PROBLEMS + 2
    assert lines[-1] == "otpsim: error: 30000 problems in 1 file"
