"""The ``otpsim`` command as CI users run it: a real subprocess on an ephemeral port."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from support import call, otpsim_command, read_until


def run(*args: str, timeout: float = 30, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*otpsim_command(), *args], capture_output=True, text=True, timeout=timeout, **kwargs
    )


@pytest.fixture
def server(start_server: Any) -> tuple[subprocess.Popen[str], str]:
    """A strict-auth server with a frozen clock, configured by environment variables."""
    return start_server(env={"OTPSIM_API_KEY": "ci-key", "OTPSIM_CLOCK_FROZEN": "true"})  # type: ignore[no-any-return]


def test_serve_subprocess_end_to_end(server: tuple[subprocess.Popen[str], str]) -> None:
    proc, base = server
    key = {"X-API-KEY": "ci-key"}
    status, body = call("POST", f"{base}/otp", {"phoneNumber": "+33612345678", "ttl": 60}, key)
    assert status == 201, body
    otp_id = body["otpId"]
    # Strict mode from OTPSIM_API_KEY: another key is refused.
    status, body = call("POST", f"{base}/otp", {"phoneNumber": "+33612345678"}, {"X-API-KEY": "x"})
    assert (status, body["error"]["type"]) == (401, "invalid_api_key")

    status, message = call("GET", f"{base}/_sim/messages/latest?otpId={otp_id}&wait=5")
    assert status == 200
    status, body = call("POST", f"{base}/otp/{otp_id}", {"pin": message["pin"]}, key)
    assert (status, body) == (200, {"status": "VERIFIED"})

    # Frozen clock from OTPSIM_CLOCK_FROZEN, moved over the control API.
    status, second = call("POST", f"{base}/otp", {"phoneNumber": "+33612345678", "ttl": 60}, key)
    call("POST", f"{base}/_sim/clock", {"advance": 61})
    status, body = call("GET", f"{base}/otp/{second['otpId']}", headers=key)
    assert body["status"] == "EXPIRED"

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert proc.stdout is not None
    assert "stopped" in proc.stdout.read()


def test_ctrl_c_stops_cleanly(server: tuple[subprocess.Popen[str], str]) -> None:
    proc, _ = server
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0


def test_wait_command(server: tuple[subprocess.Popen[str], str]) -> None:
    _, base = server
    done = run("wait", base, "--timeout", "10")
    assert done.returncode == 0, done.stderr
    assert "ready" in done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_wait_times_out_with_exit_1() -> None:
    done = run("wait", f"http://127.0.0.1:{free_port()}", "--timeout", "0.5")
    assert done.returncode == 1
    assert "did not answer within 0.5s" in done.stderr


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("port: 8080\ndefaults:\n  ttl: 5\n")
    done = run("serve", "--config", str(config))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [f"otpsim: error: {config}:3: defaults.ttl: Min value for 'ttl' is 60 seconds"]


def test_bad_flag_value_exits_2() -> None:
    done = run("serve", "--port", "http")
    assert done.returncode == 2
    assert done.stderr.strip() == "otpsim: error: --port: expected an integer, got 'http'"


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = run("serve", "--port", str(port))
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_version_and_python_dash_m(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "otpsim", "--version"], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0
    assert done.stdout.startswith("otpsim ")


def test_sigterm_reports_undelivered_callbacks(start_server: Any) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"
    proc, base = start_server("--callback-url", dead, "--callback-retry-schedule", "0,3600")
    key = {"X-API-KEY": "k"}
    _, otp = call("POST", f"{base}/otp", {"phoneNumber": "+33612345678"}, key)
    call("DELETE", f"{base}/otp/{otp['otpId']}", headers=key)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, log = call("GET", f"{base}/_sim/callbacks")
        if log["callbacks"] and log["callbacks"][0]["attempts"]:
            break
        time.sleep(0.05)
    assert "connection failed" in log["callbacks"][0]["attempts"][0]["error"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert proc.stderr is not None
    assert "1 callback deliveries still pending" in proc.stderr.read()


def json_lines(text: str) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("show_pins", [False, True])
def test_json_logs_one_line_per_request_sms_and_callback(
    start_server: Any, show_pins: bool
) -> None:
    # Every request has an access line at debug (at info only those answered with an error).
    args = ["--log-format", "json", "--log-level", "debug", "--callback-retry-schedule", "0"]
    if show_pins:
        args += ["--log-pins", "true"]
    proc, base = start_server(*args)
    key = {"X-API-KEY": "logs"}
    _, otp = call(
        "POST",
        f"{base}/otp",
        {"phoneNumber": "+33612345678", "otpCallbackUrl": "http://127.0.0.1:9/x"},
        key,
    )
    _, message = call("GET", f"{base}/_sim/messages/latest?otpId={otp['otpId']}")
    call("DELETE", f"{base}/otp/{otp['otpId']}", headers=key)
    deadline = time.monotonic() + 10
    while not any(c["attempts"] for c in call("GET", f"{base}/_sim/callbacks")[1]["callbacks"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=15)
    assert proc.stderr is not None
    lines = json_lines(proc.stderr.read())
    access = [x for x in lines if x["logger"] == "otpsim.access" and x["path"] == "/otp"]
    assert access[0]["status"] == 201
    assert access[0]["account"] == "logs"
    assert len(access[0]["request_id"]) == 32
    sms = [x for x in lines if x["logger"] == "otpsim.sms"]
    assert len(sms) == 1
    pin = message["pin"]
    if show_pins:
        assert pin in sms[0]["text"]
    else:
        assert pin not in json.dumps(lines)  # nowhere in any log line
        assert "******" in sms[0]["text"]
    attempts = [x for x in lines if x["logger"] == "otpsim.callbacks" and "attempt" in x]
    assert attempts[0]["error"].startswith("connection failed")
    assert attempts[0]["url"] == "http://127.0.0.1:9/x"


def test_sigterm_lets_an_in_flight_request_finish(start_server: Any) -> None:
    proc, base = start_server()
    answer: dict[str, Any] = {}

    def long_poll() -> None:
        answer["result"] = call(
            "GET", f"{base}/_sim/messages/latest?phoneNumber=%2B33612345678&wait=1.5"
        )

    import threading

    waiting = threading.Thread(target=long_poll)
    waiting.start()
    time.sleep(0.3)  # the request is in flight
    proc.send_signal(signal.SIGTERM)
    waiting.join(timeout=15)
    status, body = answer["result"]
    # A real answer, not a reset; and at once: the server does not wait out the poll.
    assert (status, body["error"]["code"]) == (503, 1016)
    assert "shutting down" in body["error"]["message"]
    assert proc.wait(timeout=15) == 0


def test_oversized_headers_get_a_4xx_and_the_server_keeps_serving(start_server: Any) -> None:
    import http.client
    from urllib.parse import urlsplit

    _, base = start_server()
    where = urlsplit(base)
    conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=10)
    conn.request("GET", "/_sim/health", headers={"X-Junk": "x" * 100_000})
    assert 400 <= conn.getresponse().status < 500
    conn.close()
    assert call("GET", f"{base}/_sim/health")[0] == 200


# -- the small traps: bare otpsim, a closed stdout, JSON all the way ---------------------


def test_bare_otpsim_prints_the_help_and_exits_2() -> None:
    done = run()
    assert done.returncode == 2
    assert done.stdout.startswith("usage: otpsim")
    for command in ("serve", "wait", "run", "validate", "tail"):
        assert command in done.stdout
    assert "error" not in done.stderr


def shell(script: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=60, **kwargs
    )


def test_run_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    import shlex

    scenario = tmp_path / "slow.yaml"
    scenario.write_text("steps:\n  - wait: 0.5\n  - wait: 0.1\n", encoding="utf-8")
    command = shlex.join([*otpsim_command(), "run", str(scenario)])
    done = shell(f'{command} | head -1; echo "exit=${{PIPESTATUS[0]}}"')
    assert done.stdout.splitlines()[0] == f"{scenario}: slow"  # the one line head kept
    assert done.stdout.splitlines()[-1] == "exit=141"
    assert "Traceback" not in done.stderr
    assert "BrokenPipe" not in done.stderr
    assert done.stderr == ""


def test_tail_into_a_closed_pipe_ends_quietly(start_server: Any) -> None:
    import shlex

    _, base = start_server()
    command = shlex.join([*otpsim_command(), "tail", "--url", base])
    proc = subprocess.Popen(
        ["bash", "-c", f'{command} | head -1; echo "exit=${{PIPESTATUS[0]}}"'],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the pipeline is stopped as one
    )
    try:
        read_until(proc, "following", stream="stderr")
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            call("POST", f"{base}/otp", {"phoneNumber": "+33612345678"}, {"X-API-KEY": "k"})
            time.sleep(0.2)  # one SMS for head's line, the next into the closed pipe
        out, err = proc.communicate(timeout=10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the pipeline, if it is still there
        proc.wait(timeout=10)
    lines = out.splitlines()
    assert "+33612345678" in lines[0]
    assert lines[-1] == "exit=141"
    assert "Traceback" not in err
    assert "disconnected" not in err


def test_json_log_format_makes_every_line_json(start_server: Any) -> None:
    import json

    proc, base = start_server("--log-format", "json", "--fixed-pin", "+33612345678=975310")
    _, otp = call("POST", f"{base}/otp", {"phoneNumber": "+33612345678"}, {"X-API-KEY": "k"})
    _, message = call("GET", f"{base}/_sim/messages/latest?otpId={otp['otpId']}&wait=5")
    assert message["pin"] == "975310"  # --fixed-pin, from the command line
    status, _ = call("GET", f"{base}/otp/nope", headers={"X-API-KEY": "k"})
    assert status == 404
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert proc.stdout is not None
    assert proc.stderr is not None
    rest = proc.stdout.read().splitlines()
    err = proc.stderr.read().splitlines()
    records = [json.loads(line) for line in [*rest, *err] if line]  # each one is JSON
    assert [r["msg"] for r in records if r["logger"] == "otpsim"][-1] == "otpsim: stopped"
    # At the default level (info) the access log has the request answered with an error
    # only: a line per successful request cost ~8 % of a request under load (issue 18).
    access = [r for r in records if r["logger"] == "otpsim.access"]
    assert [(r["path"], r["status"]) for r in access] == [("/otp/nope", 404)]


def test_the_json_banner_is_one_record(tmp_path: Path) -> None:
    import json

    proc = subprocess.Popen(
        [*otpsim_command(), "serve", "--port", "0", "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        line = read_until(proc, r"^\{").string
        banner = json.loads(line)
        assert banner["logger"] == "otpsim"
        assert banner["level"] == "info"
        assert banner["msg"].endswith("a fake SMS provider is listening")
        assert banner["api"].startswith("http://127.0.0.1:")
        assert banner["inbox"] == banner["api"] + "/"
        assert banner["auth"] == "any non-empty key"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_errors_in_json_mode_are_json_too() -> None:
    import json

    done = run("serve", "--log-format", "json", "--port", "70000")
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    record = json.loads(line)
    assert (record["level"], record["logger"]) == ("error", "otpsim")
    assert record["msg"].startswith("--port: expected a port from 0 to 65535")


def test_help_imports_no_server() -> None:
    """``otpsim --help`` (and ``wait``, ``tail``) start in a blink: the CLI module imports
    neither the server, nor asyncio, nor urllib (issue 18: --help took ~0.5 s)."""
    code = (
        "import sys, otpsim.cli; "
        "print(sorted(m for m in ('asyncio', 'aiohttp', 'urllib.request', 'yaml', "
        "'otpsim.server.app', 'otpsim.clock', 'logging') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


# What `otpsim serve` (defaults) needs only for its pages, scenario files, a --db or a
# metrics scrape: loaded when first used, not before the first answer (issue 18: start to
# healthy < 0.5 s).
NOT_BEFORE_FIRST_ANSWER = (
    "jinja2", "markupsafe", "yaml", "prometheus_client", "sqlite3", "re2", "otpsim.scenario",
    "otpsim.yamlutil", "otpsim.server.apiref", "otpsim.client", "importlib.resources",
    "zipfile",
)  # fmt: skip


@pytest.mark.parametrize("args", [(), ("--log-format", "json")], ids=["defaults", "json"])
def test_serve_answers_before_loading_what_only_pages_and_scenarios_use(
    start_server: Any, args: tuple[str, ...]
) -> None:
    """The modules a default ``serve`` imported by the time it answered its health check
    and a POST /otp (PYTHONPROFILEIMPORTTIME lists each import on stderr)."""
    proc, base = start_server(*args, env={"PYTHONPROFILEIMPORTTIME": "1"})
    lines: list[str] = []
    pump = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    pump.start()  # the server never blocks on a full stderr pipe
    assert call("GET", f"{base}/_sim/health")[0] == 200
    created = call("POST", f"{base}/otp", {"phoneNumber": "+33612345678"}, {"X-API-KEY": "k"})
    assert created[0] == 201, created
    proc.send_signal(signal.SIGTERM)  # nothing else asked: the stop imports none of them
    assert proc.wait(timeout=30) == 0
    pump.join(timeout=30)
    imported = {line.rsplit("|", 1)[1].strip() for line in lines if "import time:" in line}
    assert "aiohttp.web" in imported  # the listing is there
    loaded = sorted(m for m in imported if m.startswith(NOT_BEFORE_FIRST_ANSWER))
    assert loaded == [], loaded


def test_what_loads_on_first_use_serves_concurrent_first_users(start_server: Any) -> None:
    """The first scenario activations (their machinery loads in worker threads), the first
    pages and the first scrape, all at once on a fresh server: each is answered as usual."""
    _, base = start_server()
    scenario = (
        'name: first\nnetwork:\n  rules:\n    - match: {regex: "^\\\\+336"}\n      error: 503\n'
    )

    def fetch(method: str, path: str, body: str | None = None) -> tuple[int, str]:
        data = None if body is None else body.encode()
        request = urllib.request.Request(base + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()

    asks = [("PUT", "/_sim/scenario", scenario)] * 4 + [
        ("GET", "/", None), ("GET", "/_sim/api", None), ("GET", "/_sim/metrics", None),
        ("GET", "/_sim/openapi.json", None),
    ]  # fmt: skip
    with concurrent.futures.ThreadPoolExecutor(len(asks)) as pool:
        answers = list(pool.map(lambda ask: fetch(*ask), asks))
    assert [status for status, _ in answers] == [200] * len(asks)
    assert all(json.loads(text)["name"] == "first" for _, text in answers[:4])
    assert "<html" in answers[4][1]
    assert "<html" in answers[5][1]
    assert "otpsim_http_requests_total" in answers[6][1]
    assert json.loads(answers[7][1])["openapi"].startswith("3.")
