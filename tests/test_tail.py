"""``otpsim tail`` against a live server, and its line format."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from support import call, otpsim_command, read_until

from otpsim.client import websocket_url
from otpsim.tail import PIN_STYLE, format_event, printable

KEY = {"X-API-KEY": "tail"}
FR, DE = "+33612345678", "+4915123456789"


@pytest.fixture
def tail_of(start_server: Any) -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def start(base: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*otpsim_command(), "tail", "--url", base, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        read_until(proc, r"otpsim tail: following", stream="stderr")
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_tail_prints_each_sms_of_the_number_with_its_pin(start_server: Any, tail_of: Any) -> None:
    _, base = start_server()
    tail = tail_of(base, "--phone", FR, "--no-color")
    call("POST", f"{base}/otp", {"phoneNumber": DE}, KEY)  # another number: not shown
    _, otp = call("POST", f"{base}/otp", {"phoneNumber": FR, "template": "Code {{pin}}"}, KEY)
    _, message = call("GET", f"{base}/_sim/messages/latest?otpId={otp['otpId']}")
    line = read_until(tail, re.escape(FR) + ".*PIN").string
    assert f'"Code {message["pin"]}"  PIN {message["pin"]}  [1 part, GSM-7]' in line
    assert DE not in line
    call("DELETE", f"{base}/otp/{otp['otpId']}", headers=KEY)
    status_line = read_until(tail, r"CANCELLED").string
    assert f"OTP {otp['otpId'][:8]} CANCELLED (attempts 0/3)" in status_line


def test_tail_highlights_the_pin_with_color(start_server: Any, tail_of: Any) -> None:
    _, base = start_server()
    tail = tail_of(base, "--color")
    call("POST", f"{base}/otp", {"phoneNumber": FR}, KEY)
    line = read_until(tail, r"PIN").string
    assert PIN_STYLE in line


def test_terminal_escape_sequences_in_messages_are_shown_escaped() -> None:
    event = {
        "type": "message.delivered",
        "data": {
            "phoneNumber": FR, "from": "ACME", "text": "hi\x1b[31mred\n{{x}}", "pin": "1234",
            "parts": 1, "encoding": "GSM-7", "deliveredAt": "2030-01-01T12:00:00.000Z",
        },
    }  # fmt: skip
    line = format_event(event, None, color=False)
    assert line is not None
    assert "\x1b" not in line
    assert "\n" not in line
    assert "hi\\x1b[31mred\\x0a" in line
    assert printable("ok") == "ok"


def test_undelivered_sms_get_a_line() -> None:
    event = {
        "type": "message.undelivered",
        "data": {"phoneNumber": FR, "from": "ACME", "createdAt": "2030-01-01T12:00:00.000Z"},
    }
    assert format_event(event, None, color=False) == (
        "12:00:00  +33612345678  ACME  UNDELIVERED: the SMS never reached the phone"
    )


def test_events_of_no_interest_print_nothing() -> None:
    assert format_event({"type": "clock", "data": {}}, None, color=False) is None
    pending = {"type": "otp.updated", "data": {"status": "PENDING", "phoneNumber": FR}}
    assert format_event(pending, None, color=False) is None
    assert format_event({"type": "reset", "data": {}}, FR, color=False) == "--- reset ---"


def test_websocket_url() -> None:
    assert websocket_url("http://127.0.0.1:8790/") == "ws://127.0.0.1:8790/_sim/ws"
    assert websocket_url("https://sim.test") == "wss://sim.test/_sim/ws"


# -- when the simulator goes away ----------------------------------------------------------


def _ended(proc: subprocess.Popen[str], within: float = 30) -> tuple[int, str]:
    """The exit code and the rest of stderr of a tail that must end by itself."""
    _, rest = proc.communicate(timeout=within)
    return proc.returncode, rest


def test_tail_gives_up_after_retry_for_with_one_error_line(start_server: Any, tail_of: Any) -> None:
    server, base = start_server()
    tail = tail_of(base, "--retry-for", "1")
    server.terminate()
    server.wait(timeout=30)
    code, stderr = _ended(tail)
    assert code == 1
    errors = [line for line in stderr.splitlines() if "error" in line]
    assert len(errors) == 1, stderr
    assert errors[0].startswith(f"otpsim tail: error: lost {base}")
    assert "could not reconnect within 1s (--retry-for)" in errors[0]


def test_tail_with_no_retry_ends_at_once_when_the_simulator_stops(
    start_server: Any, tail_of: Any
) -> None:
    server, base = start_server()
    tail = tail_of(base, "--retry-for", "0")
    server.terminate()
    code, stderr = _ended(tail)
    assert code == 0, stderr
    assert "the simulator stopped (1001 going away)" in stderr
    assert "retrying" not in stderr


def test_tail_with_nothing_listening_gives_up() -> None:
    done = subprocess.run(
        [*otpsim_command(), "tail", "--url", "http://127.0.0.1:9",
         "--retry-for", "0.5"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith("otpsim tail: error: lost http://127.0.0.1:")


def test_retry_for_must_be_seconds() -> None:
    done = subprocess.run(
        [*otpsim_command(), "tail", "--retry-for", "soon"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "--retry-for: expected seconds from 0 to 86400, got 'soon'" in done.stderr
