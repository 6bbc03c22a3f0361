"""The GitHub Action (action.yml): its shell steps run here as a runner would run them.

A runner gives each ``run:`` script its ``env:`` (with ``${{ inputs.* }}`` filled in),
``RUNNER_TEMP``, ``GITHUB_ACTION_PATH`` (the action's own checkout: this repository) and
the ``GITHUB_ENV``/``GITHUB_PATH``/``GITHUB_OUTPUT`` files, whose lines later steps see.
The ``uses:`` step (upload-artifact) is GitHub's own and is only checked for its inputs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import urllib.error
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import call

ROOT = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


class Runner:
    """One job: the files and variables a GitHub runner keeps between steps."""

    def __init__(self, folder: Path, temp: Path) -> None:
        self.folder, self.temp = folder, temp
        self.files = {name: folder / name.lower() for name in ("GITHUB_ENV", "GITHUB_PATH")}
        for path in self.files.values():
            path.touch()

    def job_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTPSIM_", "GITHUB_"))}
        for line in self.files["GITHUB_ENV"].read_text().splitlines():
            name, _, value = line.partition("=")
            env[name] = value
        extra = self.files["GITHUB_PATH"].read_text().split()
        env["PATH"] = os.pathsep.join([*reversed(extra), env["PATH"]])
        return env

    def use(self, **given: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
        """Run the action's shell steps with these inputs; the step's result and outputs."""
        inputs = {name: spec.get("default", "") for name, spec in ACTION["inputs"].items()}
        unknown = set(given) - set(inputs)
        assert not unknown, unknown
        inputs.update(given)
        output = self.folder / "github-output"
        output.write_text("")
        done: subprocess.CompletedProcess[str] | None = None
        for step in ACTION["runs"]["steps"]:
            if "run" not in step:
                continue
            assert step["shell"] == "bash"
            assert "${{" not in step["run"], "inputs reach scripts through env: only"
            env = self.job_env()
            env.update(
                RUNNER_TEMP=str(self.temp),
                GITHUB_ACTION_PATH=str(ROOT),
                GITHUB_OUTPUT=str(output),
                **{name: str(path) for name, path in self.files.items()},
            )
            for name, value in step.get("env", {}).items():
                env[name] = EXPRESSION.sub(lambda m: evaluate(m.group(1), inputs), str(value))
            # What GitHub runs for `shell: bash`.
            script = self.folder / "step.sh"
            script.write_text(step["run"])
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
        assert done is not None
        outputs = dict(line.partition("=")[::2] for line in output.read_text().splitlines() if line)
        return done, outputs

    def kill_leftover(self) -> None:
        pid = self.temp / "otpsim" / "pid"
        if pid.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid.read_text()), 9)


def evaluate(expression: str, inputs: dict[str, str]) -> str:
    name = expression.removeprefix("inputs.")
    assert name != expression, f"a runner cannot give {expression!r} here"
    assert name in inputs, f"no input {name!r}"
    return inputs[name]


@pytest.fixture(scope="module")
def runner_temp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One RUNNER_TEMP for this module's jobs: otpsim is pip-installed once, not per test."""
    return tmp_path_factory.mktemp("runner-temp")


@pytest.fixture
def runner(tmp_path: Path, runner_temp: Path) -> Any:
    job = Runner(tmp_path, runner_temp)
    yield job
    job.kill_leftover()


def test_start_then_stop_as_a_workflow_uses_it(runner: Runner) -> None:
    started, outputs = runner.use(
        port="0",  # a free port: the action reads it from otpsim's own start-up lines
        args="--clock-frozen true --log-format json",
        scenario="builtin:provider_errors",
    )
    assert started.returncode == 0, started.stdout + started.stderr
    env = runner.job_env()
    url = env["OTPSIM_URL"]
    assert url.startswith("http://127.0.0.1:")
    assert outputs["url"] == url
    assert "otpsim" in os.listdir(env["PATH"].split(os.pathsep)[0])  # later steps call it
    # The job's tests run against it, with the scenario's network rules on.
    status, body = call("POST", f"{url}/otp", {"phoneNumber": "+33612345678"}, {"X-API-KEY": "k"})
    assert (status, body["error"]["type"]) == (500, "server_error")
    status, otp = call("POST", f"{url}/otp", {"phoneNumber": "+33699999999"}, {"X-API-KEY": "k"})
    assert status == 201

    stopped, _ = runner.use(command="stop", run="builtin:expiry")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "scenarios: 1 passed, 0 failed" in stopped.stdout
    artifacts = runner.temp / "otpsim" / "artifacts"
    suite = ET.parse(artifacts / "otpsim-report.xml").getroot().find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "1"
    log = (artifacts / "otpsim.log").read_text()
    assert '"status": 500' in log or '"status":500' in log  # the job's request, logged
    assert "otpsim: stopped" in log  # a clean stop on SIGTERM
    # The journal is what the job's own tests did (saved before the scenarios ran).
    journal = json.loads((artifacts / "otps.json").read_text())["otps"]
    assert [o["otpId"] for o in journal] == [otp["otpId"]]
    messages = json.loads((artifacts / "messages.json").read_text())["messages"]
    assert [m["otpId"] for m in messages] == [otp["otpId"]]
    with pytest.raises(urllib.error.URLError):
        call("GET", f"{url}/_sim/health")  # it is gone


def test_a_server_that_cannot_start_fails_the_step_with_its_log(runner: Runner) -> None:
    started, _ = runner.use(args="--rate-limit lots")
    assert started.returncode == 1
    assert "::error title=otpsim::otpsim did not start" in started.stdout
    assert "--rate-limit: " in started.stdout  # otpsim's own one-line reason
    assert "OTPSIM_URL" not in runner.job_env()
    assert not (runner.temp / "otpsim" / "pid").exists()  # nothing left running


def test_stop_without_start_is_a_warning_not_a_failure(runner: Runner) -> None:
    stopped, _ = runner.use(command="stop")
    assert stopped.returncode == 0
    assert "::warning title=otpsim::not started in this job" in stopped.stdout


def test_an_unknown_command_is_refused(runner: Runner) -> None:
    done, _ = runner.use(command="restart")
    assert done.returncode == 2
    assert "command must be start or stop, got 'restart'" in done.stdout


def test_the_upload_step_keeps_the_artifacts_of_a_stop() -> None:
    upload = [s for s in ACTION["runs"]["steps"] if "uses" in s]
    assert [s["uses"] for s in upload] == ["actions/upload-artifact@v4"]
    assert upload[0]["with"]["path"] == "${{ runner.temp }}/otpsim/artifacts"
    assert "always()" in upload[0]["if"]
    assert "inputs.command == 'stop'" in upload[0]["if"]
