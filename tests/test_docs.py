"""Docs that must stay true: the error table matches the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from otpsim.errors import E, ErrorSpec

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_catalog_error_is_documented_exactly() -> None:
    text = (DOCS / "errors.md").read_text(encoding="utf-8")
    rows = {line for line in text.splitlines() if line.startswith("| ")}
    specs = [v for v in vars(E).values() if isinstance(v, ErrorSpec)]
    assert len({(s.status, s.type, s.code) for s in specs}) == len(specs)  # no two alike
    for spec in specs:
        message = spec.message.replace("|", r"\|")
        assert f"| {spec.status} | `{spec.type}` | {spec.code} | {message} |" in rows, spec


def test_every_option_is_documented() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen", DOCS / "gen_configuration.py")
    assert spec is not None
    assert spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert gen.table() in text, "run: python docs/gen_configuration.py"


def test_the_configuration_example_loads(tmp_path: Path) -> None:
    from otpsim.config import load_settings

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(example, encoding="utf-8")
    settings = load_settings(cli={}, env={}, config_path=str(path))
    assert settings.api_keys == ("my-test-key",)
    assert settings.clock_frozen


def test_magic_numbers_are_documented_in_the_readme_and_the_format_reference() -> None:
    from otpsim.engine.carrier import MAGIC_RULES

    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    reference = (DOCS / "scenarios.md").read_text(encoding="utf-8")
    for rule in MAGIC_RULES:
        row = f"| `{rule.match}` | {rule.note} |"
        assert row in readme, row
        assert row in reference, row


def test_scenario_format_reference_examples_parse() -> None:
    import re

    from otpsim.scenario.model import parse_scenario

    text = (DOCS / "scenarios.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert len(blocks) == 3
    network = parse_scenario(blocks[0], "network-example")
    assert network.network is not None
    assert len(network.network.carrier.rules) == 8
    endpoints = parse_scenario(blocks[1], "endpoints-example")
    assert endpoints.network is not None
    assert [sorted(r.on) for r in endpoints.network.carrier.rules] == [
        ["verify"],
        ["status"],
        ["cancel"],
        ["token"],
        ["create"],
    ]
    steps = parse_scenario(blocks[2], "steps-example")
    assert [s.kind for s in steps.steps] == [
        "create",
        "latest",
        "verify",
        "expect_callback",
        "verify",
        "expect_request",
    ]


def test_the_readme_shows_the_pytest_example_verbatim() -> None:
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    example = (DOCS.parent / "tests" / "examples" / "test_login_example.py").read_text(
        encoding="utf-8"
    )
    assert "```python\n" + example + "```" in readme


def test_every_otpsim_command_in_the_ci_recipes_is_accepted() -> None:
    import re
    import shlex

    import yaml

    from otpsim.cli import _parser

    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Use it in CI", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(blocks) == 5
    commands = []
    for block in blocks:
        yaml.safe_load(block)  # each recipe is valid YAML
        commands += re.findall(
            r"(otpsim (?:serve|wait|run|validate|tail|scenarios)[^>&\n`]*)", block
        )
    assert len(commands) >= 3
    for command in commands:
        _parser().parse_args(shlex.split(command)[1:])  # exits on a bad command line


def test_the_client_example_runs(start_server: Any) -> None:
    import re

    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### The Python client", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    _, base = start_server()
    source = code.group(1).replace("http://127.0.0.1:8790", base)
    exec(compile(source, "README client example", "exec"), {"print": lambda *a: None})
