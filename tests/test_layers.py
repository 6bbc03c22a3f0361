"""The module graph, checked: the engine's only face is the Simulator, the engine
imports no web, YAML or template library, and the light entry points stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from otpsim.config import Settings
from otpsim.engine import Simulator

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "otpsim"
ENGINE = PACKAGE / "engine"

# What a Simulator keeps inside: never to be reached through it from outside.
COLLABORATORS = frozenset(
    {"store", "clock", "bus", "auth", "limiter", "carrier", "balances", "scheduler", "rng"}
)

# The Simulator's whole public face: its verbs, plus the wiring the server's
# components get (the bus, the timers, the delivery log) and its settings.
FACE = frozenset({
    "settings", "bus", "timers", "delivery_log", "subscribe", "set_pause",
    "recover", "run", "wait_durable", "close", "new_id",
    "admit", "check_client", "issue_token", "live_tokens", "balance", "set_balance",
    "accounts_with_balance",
    "create_otp", "validate_number", "get_otp", "list_otps", "status_counts", "verify",
    "cancel", "fault_for", "messages", "latest_message", "wait_latest_message", "clear_messages",
    "now", "clock_json", "move_clock", "wait_jump", "use_scenario", "scenario_json", "reset",
    "account_of", "account_scenarios",
    "log_request", "requests", "wait_request", "clear_requests", "otp_phone",
})  # fmt: skip


def _is_simulator(node: ast.expr) -> bool:
    """An expression that, by this project's naming, is a Simulator: ``sim``,
    ``simulator``, ``x.sim``, ``app[SIM]``, ``sim_of(client)``."""
    if isinstance(node, ast.Name):
        return node.id in ("sim", "simulator")
    if isinstance(node, ast.Attribute):
        return node.attr == "sim"
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Name) and node.slice.id == "SIM"
    if isinstance(node, ast.Call):
        return isinstance(node.func, ast.Name) and node.func.id == "sim_of"
    return False


def _outside_engine() -> list[Path]:
    files = [
        *PACKAGE.rglob("*.py"),
        *(ROOT / "tests").rglob("*.py"),
        *(ROOT / "bench").rglob("*.py"),
    ]
    return sorted(f for f in files if ENGINE not in f.parents and ".venv" not in f.parts)


def reaching_in(source: str) -> list[tuple[int, str]]:
    """Every ``<simulator>.<collaborator>.<anything>`` chain and every
    ``<simulator>._private`` in ``source`` (handing ``sim.bus`` to a component is
    wiring; calling through it is reaching in)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute):
            continue
        inner = node.value  # in ``sim.store.get_otp``, ``sim.store``
        if (
            isinstance(inner, ast.Attribute)
            and _is_simulator(inner.value)
            and inner.attr in COLLABORATORS
        ):
            found.append((inner.lineno, ast.unparse(inner)))
        elif _is_simulator(inner) and node.attr.startswith("_"):
            found.append((node.lineno, ast.unparse(node)))
    return sorted(found)


def test_the_check_catches_what_it_is_for() -> None:
    caught = reaching_in(
        "sim.store.list_otps()\nrequest.app[SIM].clock.time()\nself.sim._carrier\n"
        "sim_of(client).bus.subscribe(f)\nsim.list_otps()\nLiveHub(sim.bus)\n"
    )
    assert [text for _, text in caught] == [
        "sim.store",
        "request.app[SIM].clock",
        "self.sim._carrier",
        "sim_of(client).bus",
    ]


def test_nothing_outside_the_engine_reaches_into_a_simulator() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in _outside_engine()
        for line, text in reaching_in(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "use a Simulator verb instead:\n" + "\n".join(offenders)


def test_the_simulators_public_face_is_its_verbs() -> None:
    kept = {name for name in vars(Simulator(Settings())) if not name.startswith("_")}
    assert kept == {"settings"}  # every collaborator is private
    public = {name for name in dir(Simulator) if not name.startswith("_")}
    assert public | kept == FACE, "a new public name is a new verb: add it on purpose"


def test_outside_the_engine_only_its_package_and_its_values_are_imported() -> None:
    allowed = {"otpsim.engine", "otpsim.engine.network"}
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ENGINE in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("otpsim.engine") and name not in allowed:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert offenders == []


def imported_by(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    return set(done.stdout.split())


def heavy(modules: set[str], *roots: str) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in roots or m.startswith(roots))


def test_the_engine_imports_no_web_yaml_or_templates_nor_its_front_ends() -> None:
    modules = imported_by("import otpsim.engine")
    assert "otpsim.engine.simulator" in modules
    assert heavy(modules, "aiohttp", "yaml", "jinja2", "prometheus_client") == []
    assert heavy(modules, "otpsim.server", "otpsim.scenario", "otpsim.yamlutil") == []


@pytest.mark.parametrize(
    "code",
    [
        "import otpsim.config",
        "import sys; sys.argv = ['otpsim', 'tail', '--help']\n"
        "from otpsim.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass",
    ],
    ids=["config", "tail --help"],
)
def test_light_entry_points_load_no_domain_engine_or_server(code: str) -> None:
    modules = imported_by(code)
    assert heavy(modules, "phonenumbers", "babel", "yaml", "jinja2", "re2") == []
    assert heavy(modules, "otpsim.engine", "otpsim.server", "otpsim.scenario") == []
    assert heavy(modules, "otpsim.domain.phones", "otpsim.domain.request") == []
