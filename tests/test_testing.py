"""otpsim.testing without pytest: a plain unittest TestCase, run by ``python -m unittest``."""

from __future__ import annotations

import dataclasses
import http.server
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from otpsim.client import ApiError
from otpsim.testing import Controller, default_settings

UNITTEST_MODULE = '''
import json
import sys
import unittest
import urllib.request

from otpsim.testing import Controller


def send_code(base_url, phone):
    """The code under test: it has its own API key."""
    request = urllib.request.Request(
        base_url + "/otp", data=json.dumps({"phoneNumber": phone}).encode(), method="POST",
        headers={"X-API-KEY": "app-key", "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)["otpId"]


class LoginTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.controller = Controller()
        cls.controller.start()
        cls.addClassCleanup(cls.controller.stop)

    def setUp(self):
        self.otpsim = self.controller.fresh()

    def test_first(self):
        otp_id = send_code(self.otpsim.url, "+33612345678")
        self.assertEqual(self.otpsim.latest_message("+33612345678")["otpId"], otp_id)
        self.otpsim.advance(600)
        self.assertEqual(self.otpsim.otps()[0]["status"], "EXPIRED")

    def test_second_starts_clean(self):
        self.assertEqual(self.otpsim.messages(), [])
        send_code(self.otpsim.url, "+33612345678")
        self.assertEqual(len(self.otpsim.latest_pin("+33612345678")), 6)


class ContextManagerTest(unittest.TestCase):
    def test_with(self):
        with Controller() as otpsim:
            otp_id = send_code(otpsim.url, "+33612345678")
            self.assertTrue(otpsim.latest_pin(otp_id=otp_id).isdigit())
            url = otpsim.url
        with self.assertRaises(OSError):
            urllib.request.urlopen(url + "/_sim/health", timeout=2)


if __name__ == "__main__":
    assert "pytest" not in sys.modules
    unittest.main()
'''


def test_a_plain_unittest_testcase_drives_otpsim_without_pytest(tmp_path: Path) -> None:
    module = tmp_path / "test_login_unittest.py"
    module.write_text(UNITTEST_MODULE, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(module), "-v"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "Ran 3 tests" in done.stderr
    assert "OK" in done.stderr


def test_a_controller_on_a_shared_server_sees_one_account(start_server: Any) -> None:
    _, base = start_server()
    with Controller(url=base, api_key="mine") as otpsim:
        assert otpsim.account == "mine"
        otpsim.client.create_otp({"phoneNumber": "+33612345678"})
        assert otpsim.latest_message("+33612345678")["account"] == "mine"
    with Controller(url=base, account="someone-else") as otpsim:
        assert otpsim.messages() == []
    with Controller(url=base, api_key="mine") as otpsim:
        assert otpsim.messages() == []  # fresh: this account was reset
    with pytest.raises(ValueError, match=r"settings .* or url"):
        Controller(default_settings(), url=base)


def test_failures_inside_the_simulator_are_reported() -> None:
    controller = Controller()
    otpsim = controller.start()
    try:
        controller.fresh()
        assert controller.failures() is None
        import logging

        logging.getLogger("otpsim.server").error("boom")
        assert controller.failures() == "otpsim.server: boom"
        controller.fresh({"network": {"rules": [{"match": "*", "undelivered": True}]}})
        assert controller.failures() is None
        otpsim.client.create_otp({"phoneNumber": "+33612345678"})
        assert otpsim.messages()[0]["status"] == "UNDELIVERED"
    finally:
        controller.stop()


def test_a_settings_instance_is_checked_as_a_config_file_is() -> None:
    """A bad default is one line naming the field, not a 500 on every POST /otp."""
    from otpsim.errors import OtpsimError

    bad = dataclasses.replace(default_settings(), default_pin_type="emoji")
    with pytest.raises(OtpsimError, match=r"^Settings: default_pin_type: .*pinType"):
        Controller(bad)


def test_two_accounts_in_parallel_on_one_shared_server_never_touch_each_other(
    start_server: Any,
) -> None:
    """One run turns the provider down and jumps its clock 400 s; the other, at the same
    time on the same server, creates, waits and verifies as if alone."""
    _, base = start_server()
    phone = "+33612345678"
    down = {"network": {"rules": [{"match": "*", "error": 503}]}}
    both_set_up, jumped = threading.Barrier(2, timeout=30), threading.Event()
    results: dict[str, Any] = {}

    def breaking_run() -> None:
        with Controller(url=base, api_key="worker-a") as otpsim:
            otpsim.client.create_otp({"phoneNumber": phone})  # before the scenario: fine
            otpsim.use_scenario(down)
            both_set_up.wait()
            try:
                otpsim.client.create_otp({"phoneNumber": phone})
            except ApiError as exc:
                results["a_status"] = exc.status
            results["a_clock"] = otpsim.advance(400)["own"]
            results["a_otps"] = [o["status"] for o in otpsim.otps()]
            jumped.set()

    def innocent_run() -> None:
        with Controller(url=base, api_key="worker-b") as otpsim:
            otp = otpsim.client.create_otp({"phoneNumber": phone})
            both_set_up.wait()
            assert jumped.wait(timeout=30)
            pin = otpsim.latest_pin(phone)
            results["b_verify"] = otpsim.client.verify(otp["otpId"], pin)["status"]
            results["b_create"] = otpsim.client.create_otp({"phoneNumber": phone})["status"]

    threads = [threading.Thread(target=run) for run in (breaking_run, innocent_run)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == {
        "a_status": 503,
        "a_clock": True,
        "a_otps": ["EXPIRED"],
        "b_verify": "VERIFIED",
        "b_create": "PENDING",
    }


def test_fresh_resets_in_process_without_requests_of_its_own() -> None:
    """The pytest fixture's per-test reset is not HTTP (issue 18: two requests were ~3 ms
    of CPU per test), so the harness adds no requests to what the server saw either."""
    import urllib.request

    controller = Controller()
    otpsim = controller.start()
    try:
        controller.fresh({"network": {"rules": [{"match": "*", "undelivered": True}]}})
        otpsim.client.create_otp({"phoneNumber": "+33612345678"})
        assert otpsim.messages()[0]["status"] == "UNDELIVERED"
        controller.fresh()
        assert otpsim.messages() == []  # everything went, the scenario too
        otpsim.client.create_otp({"phoneNumber": "+33612345678"})
        assert otpsim.messages()[0]["status"] != "UNDELIVERED"
        with urllib.request.urlopen(otpsim.url + "/_sim/metrics", timeout=10) as answer:
            metrics = answer.read().decode()
        assert 'route="sim.reset"' not in metrics
        assert 'route="sim.scenario.delete"' not in metrics
    finally:
        controller.stop()


class _Scripted(http.server.BaseHTTPRequestHandler):
    """A callback receiver: 500 to the first request, 200 to the others."""

    answers: ClassVar[list[int]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(self.answers.pop(0) if self.answers else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_advance_then_callbacks_shows_every_attempt_that_came_due() -> None:
    _Scripted.answers = [500]
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    try:
        with Controller() as otpsim:
            body = {"phoneNumber": "+33612345678", "ttl": 60, "otpCallbackUrl": hook}
            otp = otpsim.client.create_otp(body)
            otpsim.advance(400)  # the expiry, its callback (500), the retry 5 s later (200)
            [delivery] = otpsim.callbacks(otp["otpId"])  # at once: no polling
    finally:
        receiver.shutdown()
        receiver.server_close()
    assert delivery["status"] == "delivered"
    assert [a["statusCode"] for a in delivery["attempts"]] == [500, 200]
    first, second = delivery["attempts"]
    assert second["at"] == first["nextRetryAt"]


def test_callbacks_right_after_a_verify_or_an_advance_lists_their_deliveries() -> None:
    """The README's example: the batch the verify (or the expiry) opened is still open
    when callbacks() is asked; it waits for that batch to close (about one window)."""
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    settings = dataclasses.replace(default_settings(), callback_batch_window=0.5)
    try:
        with Controller(settings) as otpsim:
            body = {"phoneNumber": "+33612345678", "otpCallbackUrl": hook}
            otp = otpsim.client.create_otp(body)
            otpsim.client.verify(otp["otpId"], otpsim.latest_pin(otp_id=otp["otpId"]))
            [delivery] = otpsim.callbacks(otp["otpId"])  # at once: no polling
            assert [i["status"] for i in delivery["payload"]["data"]] == ["VERIFIED"]
            other = otpsim.client.create_otp({**body, "ttl": 60})
            otpsim.advance(600)
            [expired] = otpsim.callbacks(other["otpId"])
            assert expired["otpIds"] == [other["otpId"]]
            assert len(otpsim.callbacks()) == 2
    finally:
        receiver.shutdown()
        receiver.server_close()
