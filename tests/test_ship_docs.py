"""The README's CI recipes (container image, action, compose, Testcontainers) stay true.

The image itself is built and run by ``.ci/container-check``; here every recipe is
parsed and checked against what otpsim, its image and its action accept.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from otpsim.cli import _parser
from otpsim.config import OPTIONS, load_settings
from otpsim.scenario.model import scenario_files

ROOT = Path(__file__).resolve().parents[1]
SECTION = (
    (ROOT / "README.md")
    .read_text(encoding="utf-8")
    .split("## Use it in CI", 1)[1]
    .split("\n## ", 1)[0]
)
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
CONTAINERFILE = (ROOT / "Containerfile").read_text(encoding="utf-8")
IMAGE = "ghcr.io/otpsim/otpsim:0.1.0"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", SECTION, re.S)


def recipes() -> list[Any]:
    return [yaml.safe_load(block) for block in blocks("yaml")]


def image_env() -> dict[str, str]:
    """The ENV the Containerfile gives otpsim."""
    env_block = re.search(r"^ENV (.*?)\n(?!\s)", CONTAINERFILE, re.S | re.M)
    assert env_block is not None
    pairs = re.findall(r"(\w+)=(\S+)", env_block.group(1))
    return {k: v for k, v in pairs if k.startswith("OTPSIM_")}


def settings_for(container_env: dict[str, Any]) -> Any:
    """What otpsim serve in the image makes of a recipe's variables (raises if refused)."""
    env = {**image_env(), **{k: str(v) for k, v in container_env.items()}}
    return load_settings(env=env)


def test_every_otpsim_variable_named_is_one_otpsim_reads() -> None:
    known = {o.env for o in OPTIONS} | {"OTPSIM_URL", "OTPSIM_CONFIG"}
    named = set(re.findall(r"OTPSIM_[A-Z_]+", SECTION))
    assert named
    assert named <= known, named - known


def test_the_image_alone_refuses_to_start_and_names_both_ways_out() -> None:
    from otpsim.errors import OtpsimError

    with pytest.raises(OtpsimError, match=r"needs --admin-token.*--insecure-open true"):
        settings_for({})


def test_every_container_recipe_starts_and_is_reachable_by_the_name_used() -> None:
    found = recipes()
    services: list[tuple[dict[str, Any], str]] = []  # (env, the name clients use)
    github = next(r for r in found if "services" in r.get("jobs", {}).get("integration", {}))
    service = github["jobs"]["integration"]["services"]["otpsim"]
    services.append((service["env"], "127.0.0.1"))  # a published port on the runner
    gitlab = next(r for r in found if "services" in r.get("integration", {}))
    entry = gitlab["integration"]["services"][0]
    assert entry["name"] == IMAGE
    url = gitlab["integration"]["variables"]["SMS_API_URL"]
    assert url == f"http://{entry['alias']}:8790"
    services.append((entry["variables"], entry["alias"]))
    compose = next(r for r in found if "services" in r and "jobs" not in r)
    assert compose["services"]["app"]["environment"]["SMS_API_URL"] == "http://otpsim:8790"
    assert compose["services"]["app"]["depends_on"]["otpsim"]["condition"] == "service_healthy"
    services.append((compose["services"]["otpsim"]["environment"], "otpsim"))
    for env, name in services:
        settings = settings_for(env)
        assert settings.port == 8790
        reachable = name in ("127.0.0.1", "localhost") or name in settings.allowed_hosts
        assert reachable, f"{name} is not an allowed host in {env}"
    assert [s["image"] for s in (service, compose["services"]["otpsim"])] == [IMAGE, IMAGE]


def test_testcontainers_snippets() -> None:
    (python,) = blocks("python")
    compile(python, "README Testcontainers", "exec")
    (java,) = blocks("java")
    for snippet in (python, java):
        assert IMAGE in snippet
        env = dict(re.findall(r'with_?[eE]nv\("(\w+)", "([^"]*)"\)', snippet))
        assert settings_for(env).allowed_hosts == ("*",)
        assert "8790" in snippet
    assert 'Wait.forHttp("/_sim/health")' in java
    assert "Press Ctrl-C to stop." in python  # what `otpsim serve` prints when ready


def test_docker_run_line_starts_the_image() -> None:
    (line,) = [b.strip() for b in blocks("sh")]
    words = shlex.split(line)
    assert words[:3] == ["docker", "run", "--rm"]
    assert "127.0.0.1:8790:8790" in words
    env = dict(w.split("=", 1) for w in words[words.index("-e") + 1 :][:1])
    assert settings_for(env).insecure_open


def test_action_recipes_use_only_its_inputs() -> None:
    steps = next(r for r in recipes() if "jobs" in r and "steps" in r["jobs"]["integration"])
    uses = [
        s for s in steps["jobs"]["integration"]["steps"] if "otpsim/otpsim@" in s.get("uses", "")
    ]
    assert len(uses) == 2
    start, stop = (s["with"] for s in uses)
    assert set(start) | set(stop) <= set(ACTION["inputs"])
    assert stop["command"] == "stop"
    assert uses[1]["if"] == "always()"
    _parser().parse_args(["serve", *shlex.split(start["args"])])
    assert scenario_files([start["scenario"]])  # builtin: names exist
    assert scenario_files(shlex.split(stop["run"]))
    documented = set(re.findall(r"`([a-z-]+)`", SECTION.split("Inputs:", 1)[1].split("\n\n")[0]))
    assert set(ACTION["inputs"]) <= documented


def test_inline_commands_are_accepted() -> None:
    inline = re.findall(r"`(otpsim (?:run|scenarios|serve|wait)[^`]*)`", SECTION.replace("\n", " "))
    assert len(inline) >= 5
    for command in inline:
        _parser().parse_args(shlex.split(command)[1:])


def test_the_release_workflow_publishes_with_trusted_publishing_and_pushes_the_image() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/release.yml").read_text())
    assert workflow[True]["push"]["tags"] == ["v*"]  # YAML reads the key `on` as True
    jobs = workflow["jobs"]
    assert jobs["pypi"]["permissions"] == {"id-token": "write"}
    assert "pypa/gh-action-pypi-publish@release/v1" in str(jobs["pypi"]["steps"])
    assert "twine check --strict dist/*" in str(jobs["build"]["steps"])
    push = next(s for s in jobs["image"]["steps"] if "build-push-action" in s.get("uses", ""))
    assert push["with"]["file"] == "Containerfile"
    assert push["with"]["push"] is True
