"""Reports of scenario runs: progress lines for the console, and JUnit XML for CI.

A scenario that *failed* (an answer was not what it expected) and one that *errored*
(it could not be carried out: no simulator, no answer in time, a step that crashed) are
told apart everywhere: ``FAIL``/``ERROR``, JUnit ``<failure>``/``<error>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from otpsim.scenario.model import Scenario
from otpsim.scenario.runner import ScenarioResult, StepResult


def step_line(result: StepResult) -> str:
    """``  ok   3 verify: 200`` / ``  FAIL 3 verify: status: expected 200, got ...`` /
    ``  ERR  3 verify: ...`` (the step could not be carried out)."""
    mark = "ERR " if result.crashed else {True: "ok  ", False: "FAIL", None: "skip"}[result.ok]
    return f"  {mark} {result.step.index:>2} {result.step.title}: {result.detail}"


def header_of(scenario: Scenario) -> str:
    about = f" ({scenario.description.strip().splitlines()[0]})" if scenario.description else ""
    return f"{scenario.path}: {scenario.name}{about}"


def verdict(result: ScenarioResult) -> str:
    if result.ok:
        return "PASS"
    return "ERROR" if result.errored else "FAIL"


def footer(result: ScenarioResult) -> str:
    line = f"  {verdict(result)} in {result.seconds:.2f}s"
    if result.error is not None:
        line += f": {result.error}"
    return line


def summary(results: Sequence[ScenarioResult]) -> str:
    """``scenarios: 8 passed, 1 failed`` (``, 1 error`` when any errored)."""
    passed = sum(1 for r in results if r.ok)
    errors = sum(1 for r in results if r.errored)
    line = f"scenarios: {passed} passed, {len(results) - passed - errors} failed"
    if errors:
        line += f", {errors} error{'s' if errors > 1 else ''}"
    return line


def write_junit(results: Sequence[ScenarioResult], path: str | Path) -> None:
    """One testsuite, one testcase per scenario; a ``<failure>`` names its first mismatch,
    an ``<error>`` what stopped the scenario."""
    errors = sum(1 for r in results if r.errored)
    failures = sum(1 for r in results if not r.ok) - errors
    suite = ET.Element(
        "testsuite",
        name="otpsim scenarios",
        tests=str(len(results)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=Path(result.scenario.path).stem,
            name=result.scenario.name,
            file=result.scenario.path,
            time=f"{result.seconds:.3f}",
        )
        if not result.ok:
            tag = "error" if result.errored else "failure"
            failure = ET.SubElement(case, tag, message=result.failure or tag)
            failure.text = "\n".join(step_line(s) for s in result.steps) or (result.error or "")
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join(step_line(s) for s in result.steps)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    Path(path).write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
