"""Regenerate docs/inbox.png: a live otpsim with a few conversations, in Chromium.

.venv/bin/python docs/screenshot.py                 (needs Debian's chromium)
.venv/bin/python docs/screenshot.py --url BASE      (a simulator already running on
                                                     loopback, frozen clock, fresh state)

The picture: the active scenario's banner, the numbers, and one number's conversation
with its SMS and the call a scenario rule refused (503).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import expect, sync_playwright

HERE = Path(__file__).resolve().parent
KEY = {"X-API-KEY": "demo", "Content-Type": "application/json"}


def call(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=KEY)
    try:
        with urllib.request.urlopen(request) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        return json.load(exc)


FR_TEXT = "Votre code Acme : {{pin}}"
BG_TEXT = "Вашият код за вход е {{pin}}. Не го споделяйте."
DE_TEXT = "Dein Bestätigungscode: {{pin}}"
HOOK = "http://127.0.0.1:9/hooks/otp"  # nobody listens: the callback attempts show errors
# The scenario of the picture: the French number's first request is refused (503), the
# next ones work.
SCENARIO = {
    "name": "carrier trouble",
    "network": {
        "seed": 7,
        "rules": [
            {
                "match": "+33612345678",
                "note": "carrier down for FR",
                "sequence": [{"error": 503}, {"deliver": True}],
            }
        ],
    },
}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def populate(base: str) -> None:
    def otp(**body: Any) -> str:
        return str(call("POST", f"{base}/otp", {"from": "Acme", **body})["otpId"])

    def pin(otp_id: str) -> str:
        return str(call("GET", f"{base}/_sim/messages/latest?otpId={otp_id}")["pin"])

    def verify(otp_id: str, given: str) -> None:
        call("POST", f"{base}/otp/{otp_id}", {"pin": given})

    us = otp(phoneNumber="+12025550143", template="Your Acme code: {{pin}}", maxAttempts=2)
    verify(us, "000000")
    verify(us, "111111")
    bg = otp(phoneNumber="+359888123456", template_bg=BG_TEXT)
    verify(bg, pin(bg))
    de = otp(phoneNumber="+4915123456789", ttl=120, template_de=DE_TEXT)
    call("POST", f"{base}/_sim/clock", {"advance": 121})
    call("GET", f"{base}/otp/{de}")
    refused = call("POST", f"{base}/otp", {"phoneNumber": "+33612345678", "template_fr": FR_TEXT})
    assert refused["error"]["code"], refused  # the scenario's 503
    first = otp(phoneNumber="+33612345678", template_fr=FR_TEXT)
    verify(first, pin(first))
    failed = otp(
        phoneNumber="+33612345678", template_fr=FR_TEXT, maxAttempts=2, otpCallbackUrl=HOOK
    )
    verify(failed, "000000")
    verify(failed, "999999")
    otp(
        phoneNumber="+33612345678",
        template_fr=FR_TEXT,
        pinType="alphanumeric",
        pinLength=8,
        ttl=600,
    )


def shoot(base: str) -> None:
    call("PUT", f"{base}/_sim/scenario", SCENARIO)
    populate(base)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS
        )
        page = browser.new_page(viewport={"width": 1280, "height": 760}, color_scheme="light")
        page.goto(base + "/")
        expect(page.get_by_test_id("connection")).to_have_text("live")
        expect(page.get_by_test_id("conversation")).to_have_count(4)
        page.get_by_test_id("conversation").first.click()
        refused = page.get_by_test_id("refused-call")  # the 503, and the wrong PINs (400)
        expect(refused.filter(has_text="carrier down for FR")).to_have_count(1)
        expect(page.get_by_test_id("callback-attempt").first).to_be_visible()
        expect(page.get_by_test_id("scenario")).to_be_visible()
        page.wait_for_timeout(300)
        page.screenshot(path=str(HERE / "inbox.png"))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running simulator (loopback) instead of a new one")
    url = parser.parse_args().url
    if url:
        shoot(url.rstrip("/"))
        print(f"wrote {HERE / 'inbox.png'}")
        return
    server = subprocess.Popen(
        [sys.executable, "-m", "otpsim", "serve", "--port", "0", "--clock-frozen", "true",
         "--clock-start", "2030-05-04T09:30:00Z", "--seed", "7"],
        stdout=subprocess.PIPE, text=True, cwd=HERE,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        base = ""
        for line in server.stdout:
            match = re.search(r"API:\s+(\S+)", line)
            if match:
                base = match.group(1)
                break
        shoot(base)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"wrote {HERE / 'inbox.png'}")


if __name__ == "__main__":
    main()
