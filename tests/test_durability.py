"""Durability: SIGKILL under load, callbacks across a restart, expiry after a restart,
and flat memory under an endless stream."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from support import call, otpsim_command

from otpsim.clock import Clock
from otpsim.config import Settings
from otpsim.engine.simulator import Simulator

KEY = {"X-API-KEY": "durable"}
FR = "+33612345678"


def test_sigkill_under_load_loses_no_acknowledged_otp(
    start_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "otpsim.db")
    proc, base = start_server("--db", db)
    acknowledged: list[str] = []
    stop = threading.Event()

    def load() -> None:  # bounded: at most 5000 requests, and only until the kill
        for _ in range(5000):
            if stop.is_set():
                return
            try:
                status, body = call("POST", f"{base}/otp", {"phoneNumber": FR}, KEY)
            except OSError:
                return
            if status == 201:
                acknowledged.append(body["otpId"])

    worker = threading.Thread(target=load)
    worker.start()
    deadline = time.monotonic() + 10
    while len(acknowledged) < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.kill()  # SIGKILL, mid-run
    proc.wait(timeout=10)
    stop.set()
    worker.join(timeout=30)
    assert len(acknowledged) >= 150

    _, base = start_server("--db", db)
    for otp_id in acknowledged:
        status, stored = call("GET", f"{base}/_sim/otps/{otp_id}")
        assert status == 200, otp_id
        assert len(stored["pin"]) == 6
        assert stored["status"] == "PENDING"
    with capsys.disabled():
        print(
            f"\n  durability: {len(acknowledged)} OTPs acknowledged with 201 before SIGKILL, all found after restart"
        )


class Receiver(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, list[str]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Receiver.seen.append((self.headers["webhook-id"], [i["otpId"] for i in body["data"]]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def receiver_on(free_port: int) -> Iterator[Any]:
    servers: list[http.server.HTTPServer] = []

    def start() -> None:
        Receiver.seen = []
        server = http.server.HTTPServer(("127.0.0.1", free_port), Receiver)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def cancel_with_callback(base: str, hook: str) -> str:
    _, otp = call("POST", f"{base}/otp", {"phoneNumber": FR, "otpCallbackUrl": hook}, KEY)
    call("DELETE", f"{base}/otp/{otp['otpId']}", headers=KEY)
    return str(otp["otpId"])


def wait_for_attempts(base: str, otp_ids: list[str]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        deliveries = call("GET", f"{base}/_sim/callbacks")[1]["callbacks"]
        tried = {i for d in deliveries if d["attempts"] for i in d["otpIds"]}
        if set(otp_ids) <= tried:
            return
        time.sleep(0.05)
    raise AssertionError("the first attempts did not happen")


def test_callbacks_survive_an_outage_and_a_restart_and_arrive_once(
    start_server: Any, tmp_path: Path, free_port: int, receiver_on: Any
) -> None:
    db = str(tmp_path / "otpsim.db")
    flags = ("--db", db, "--clock-frozen", "true", "--callback-retry-schedule", "0,5,5,5")
    hook = f"http://127.0.0.1:{free_port}/hook"  # down: nobody listens yet
    proc, base = start_server(*flags)
    before = [cancel_with_callback(base, hook) for _ in range(3)]
    wait_for_attempts(base, before)
    proc.kill()

    _, base = start_server(*flags)
    after = [cancel_with_callback(base, hook) for _ in range(2)]
    wait_for_attempts(base, after)
    receiver_on()  # the receiver comes up
    call("POST", f"{base}/_sim/clock", {"advance": 5})
    deadline = time.monotonic() + 10
    while sum(len(ids) for _, ids in Receiver.seen) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    delivered = [otp_id for _, ids in Receiver.seen for otp_id in ids]
    assert sorted(delivered) == sorted(before + after)  # every one, once
    webhook_ids = [webhook_id for webhook_id, _ in Receiver.seen]
    assert len(webhook_ids) == len(set(webhook_ids))
    log = call("GET", f"{base}/_sim/callbacks")[1]["callbacks"]
    assert {d["status"] for d in log} == {"delivered"}


def wait_for_items(count: int, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while sum(len(ids) for _, ids in Receiver.seen) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_sigkill_right_after_200_verifies_loses_no_callback_and_sends_each_once(
    start_server: Any, tmp_path: Path, free_port: int, receiver_on: Any
) -> None:
    db = str(tmp_path / "otpsim.db")
    # A batch window far longer than the test: every callback is still in its open
    # batch when the process dies, so only what was committed with the 200 can save it.
    flags = ("--db", db, "--clock-frozen", "true", "--callback-batch-window", "60")
    hook = f"http://127.0.0.1:{free_port}/hook"
    receiver_on()
    proc, base = start_server(*flags)
    verified = []
    for _ in range(20):
        _, otp = call("POST", f"{base}/otp", {"phoneNumber": FR, "otpCallbackUrl": hook}, KEY)
        pin = call("GET", f"{base}/_sim/messages/latest?otpId={otp['otpId']}&wait=5")[1]["pin"]
        status, body = call("POST", f"{base}/otp/{otp['otpId']}", {"pin": pin}, KEY)
        assert (status, body) == (200, {"status": "VERIFIED"})
        verified.append(otp["otpId"])
    proc.kill()  # SIGKILL, right after the last 200
    proc.wait(timeout=10)
    assert Receiver.seen == []  # nothing had been sent yet

    proc, base = start_server(*flags)  # the open batch is sent on restart
    wait_for_items(len(verified))
    time.sleep(0.3)  # room for a duplicate to show up
    delivered = [otp_id for _, ids in Receiver.seen for otp_id in ids]
    assert sorted(delivered) == sorted(verified)  # every one, once
    log = call("GET", f"{base}/_sim/callbacks")[1]["callbacks"]
    assert {d["status"] for d in log} == {"delivered"}
    assert sorted(i for d in log for i in d["otpIds"]) == sorted(verified)

    proc.kill()  # and once delivered, a further crash and restart sends nothing again
    proc.wait(timeout=10)
    _, base = start_server(*flags)
    time.sleep(0.5)
    assert sorted(otp_id for _, ids in Receiver.seen for otp_id in ids) == sorted(verified)


def test_an_otp_expires_after_a_restart(start_server: Any, tmp_path: Path) -> None:
    db = str(tmp_path / "otpsim.db")
    proc, base = start_server("--db", db, "--clock-frozen", "true")
    _, otp = call("POST", f"{base}/otp", {"phoneNumber": FR, "ttl": 60}, KEY)
    clock = call("POST", f"{base}/_sim/clock", {"advance": 30})[1]
    proc.kill()
    _, base = start_server("--db", db)
    assert call("GET", f"{base}/_sim/clock")[1]["now"] == clock["now"]  # the clock too
    call("POST", f"{base}/_sim/clock", {"advance": 30})
    assert call("GET", f"{base}/_sim/otps/{otp['otpId']}")[1]["status"] == "EXPIRED"


async def test_memory_stays_flat_under_an_endless_stream() -> None:
    sim = Simulator(Settings(max_messages=200), clock=Clock(start=0.0, frozen=True))
    body = {"phoneNumber": FR}
    tracemalloc.start()
    try:
        sizes = []
        for n in range(6000):
            await sim.create_otp(body, account="stream")
            sim.move_clock(advance=1)
            if n in (1999, 5999):
                sizes.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert len(sim.messages()) == 200
    assert len(sim.list_otps()) == 200
    assert sum(sim.status_counts()[0].values()) == 200
    assert sizes[1] - sizes[0] < 512 * 1024  # 4,000 more OTPs: no growth to speak of


def test_a_restart_keeps_the_saved_clock_over_the_scenarios_start(
    start_server: Any, tmp_path: Path
) -> None:
    db = str(tmp_path / "otpsim.db")
    scenario = tmp_path / "frozen.yaml"
    scenario.write_text(
        'name: frozen\nnetwork:\n  clock: {frozen: true, start: "2030-01-01T00:00:00Z"}\n'
    )
    proc, base = start_server("--db", db, "--scenario", str(scenario))
    assert call("GET", f"{base}/_sim/clock")[1]["now"].startswith("2030-01-01T00:00:00")
    moved = call("POST", f"{base}/_sim/clock", {"advance": 3600})[1]
    proc.kill()
    proc.wait()
    proc, base = start_server("--db", db, "--scenario", str(scenario))
    clock = call("GET", f"{base}/_sim/clock")[1]
    assert (clock["now"], clock["frozen"]) == (moved["now"], True)  # not back to 00:00
    # A fresh database still starts where the scenario says.
    _, fresh = start_server("--db", str(tmp_path / "new.db"), "--scenario", str(scenario))
    assert call("GET", f"{fresh}/_sim/clock")[1]["now"].startswith("2030-01-01T00:00:00")


def test_a_second_server_on_the_same_db_refuses_to_start(start_server: Any, tmp_path: Path) -> None:
    db = str(tmp_path / "otpsim.db")
    first, base = start_server("--db", db)
    try:
        second = subprocess.run(
            [*otpsim_command(), "serve", "--port", "0", "--db", db],
            capture_output=True,
            text=True,
            timeout=20,
            cwd=tmp_path,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("a second server started on the same --db file")
    assert second.returncode != 0
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert db in lines[0]
    assert f"pid {first.pid}" in lines[0]
    assert call("GET", f"{base}/_sim/health")[0] == 200  # the first one is unharmed


def test_a_seeded_restart_on_the_same_file_adds_to_it_instead_of_overwriting(
    start_server: Any, tmp_path: Path
) -> None:
    # The same --seed replays the same ids from a fresh start; a restart on a file that
    # already holds that run's OTPs must not draw them again and write over them.
    db = str(tmp_path / "otpsim.db")
    args = ("--db", db, "--seed", "7", "--clock-frozen", "true")
    proc, base = start_server(*args)
    first = call("POST", f"{base}/otp", {"phoneNumber": FR}, KEY)[1]
    proc.terminate()
    proc.wait(timeout=15)
    _, base = start_server(*args)
    second = call("POST", f"{base}/otp", {"phoneNumber": FR}, KEY)[1]
    assert second["otpId"] != first["otpId"]
    kept = {o["otpId"] for o in call("GET", f"{base}/_sim/otps")[1]["otps"]}
    assert kept == {first["otpId"], second["otpId"]}
    messages = call("GET", f"{base}/_sim/messages")[1]["messages"]
    assert len({m["id"] for m in messages}) == 2


def test_a_frozen_clock_is_saved_at_start_not_only_when_moved(
    start_server: Any, tmp_path: Path
) -> None:
    db = str(tmp_path / "otpsim.db")
    proc, base = start_server("--db", db, "--clock-frozen", "true")
    frozen = call("GET", f"{base}/_sim/clock")[1]["now"]
    proc.terminate()
    proc.wait(timeout=15)
    time.sleep(1.1)  # the stop lasts; a frozen clock must not have moved meanwhile
    _, base = start_server("--db", db)
    assert call("GET", f"{base}/_sim/clock")[1]["now"] == frozen
