"""The README's five-minute tour runs verbatim against a live ``otpsim serve``."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[1] / "README.md"


def tour_script() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Five-minute tour", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "the tour has no sh block"
    return match.group(1)


def test_readme_starts_with_the_two_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[:6] == [
        "# otpsim",
        "",
        "```sh",
        "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/otpsim serve",
        "bash .ci/run",
        "```",
    ]
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip\" install -q '.[test]'" in ci
    assert '\n"$venv/bin/pytest"\n' in ci
    # The slow container check comes after the quick tests, and reports its time.
    after = ci.split('\n"$venv/bin/pytest"\n', 1)[1]
    assert ".ci/container-check" in after
    assert "container check took" in after


def test_tour_runs_verbatim(start_server: Any, tmp_path: Path) -> None:
    _, base = start_server()
    script = tour_script()
    assert "BASE=http://127.0.0.1:8790\n" in script
    script = script.replace("BASE=http://127.0.0.1:8790\n", f"BASE={base}\n", 1)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"created [0-9a-f-]{36}", out)
    assert '"pin":' in out
    assert '{"status":"VERIFIED"}' in out
    assert "\nEXPIRED\n" in out
    assert out.rstrip().endswith('{"status":"ok"}')


def test_signature_snippet_verifies_a_real_signature() -> None:
    from otpsim.server.callbacks import sign

    text = README.read_text(encoding="utf-8")
    snippet = text.split("## Status callbacks", 1)[1].split("```python\n", 1)[1].split("```")[0]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    verify = namespace["verify_otpsim_callback"]
    body = b'{"event":"otp_update","data":[]}'
    for secret in ("whsec_MDEyMzQ1Njc4OWFiY2RlZg==", "plain secret"):
        now = int(time.time())
        headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now)}
        headers["webhook-signature"] = sign(secret, "msg_1", now, body)
        assert verify(secret, headers, body)
        assert not verify(secret, headers, body + b" ")
        assert not verify("other", headers, body)
        old = {**headers, "webhook-timestamp": str(now - 3600)}
        old["webhook-signature"] = sign(secret, "msg_1", now - 3600, body)
        assert not verify(secret, old, body)


def test_the_readme_shows_the_sdk_fixture_example_verbatim() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("### The official SDK with the pytest fixture", 1)[1].split("\n## ", 1)[0]
    example = (README.parent / "tests" / "examples" / "test_sdk_fixture_example.py").read_text(
        encoding="utf-8"
    )
    assert "```python\n" + example + "```" in section
    assert 'api_key=APP_SETTINGS["sms_api_key"]' in example  # the app's own key


def test_the_readme_documents_every_fixture_and_the_marker() -> None:
    import otpsim.pytest_plugin as plugin

    text = README.read_text(encoding="utf-8")
    section = text.split("## Use it from pytest", 1)[1].split("\n## ", 1)[0]
    for name in ("otpsim_settings", "otpsim_api_key", "otpsim_account", "OTPSIM_URL"):
        assert f"`{name}`" in section, name
        if name.startswith("otpsim_"):
            assert callable(getattr(plugin, name)), name
    assert "@pytest.mark.otpsim(scenario=" in section
    assert "@pytest.mark.otpsim(settings=" in section


def test_the_request_journal_example_runs(start_server: Any) -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## The request journal", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    _, base = start_server()
    source = code.group(1).replace("http://127.0.0.1:8790", base)
    printed: list[tuple[Any, ...]] = []
    exec(compile(source, "README journal example", "exec"), {"print": lambda *a: printed.append(a)})
    assert printed == [(400, "invalid_param", {"phoneNumber": "12"})]
