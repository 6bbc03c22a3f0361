"""The inbox page and the request journal (#16 item 3): refused calls in their number's
conversation, the Requests view (live), the raw JSON of a request, the API reference
page, and every text of a request shown as text. Debian's Chromium against a real server.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import expect
from support import call

FR, DE = "+33612345678", "+4915123456789"
KEY = {"X-API-KEY": "browser"}
DOWN_503 = (
    "name: carrier trouble\n"
    "network:\n"
    "  rules:\n"
    f'    - match: "{FR}"\n'
    "      note: carrier down for FR\n"
    "      sequence:\n"
    "        - error: 503\n"
    "        - deliver: true\n"
)


@pytest.fixture
def base(live: tuple[Any, str]) -> str:
    """A real simulator (frozen clock, 127.0.0.1, port 0): the journal is its own."""
    return live[1]


def open_page(
    browser: Any, base: str, path: str = "/", **options: Any
) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 800}, **options)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(str(exc)))
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.goto(path)
    expect(tab.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    return context, tab, problems


def put_scenario(base: str, text: str) -> None:
    import urllib.request

    request = urllib.request.Request(f"{base}/_sim/scenario", data=text.encode(), method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_a_503_from_a_scenario_rule_appears_in_the_conversation(browser: Any, base: str) -> None:
    put_scenario(base, DOWN_503)
    context, tab, problems = open_page(browser, base)
    status, answer = call("POST", f"{base}/otp", {"phoneNumber": FR}, KEY)
    assert status == 503, answer
    error = answer["error"]
    refused = tab.get_by_test_id("refused-call")
    expect(refused).to_have_count(1)  # a number with no SMS yet gets a conversation
    expect(tab.get_by_test_id("conversation")).to_have_count(1)
    expect(tab.get_by_test_id("conversation")).to_contain_text("refused")
    expect(refused.get_by_test_id("refused-request")).to_have_text("POST /otp")
    expect(refused.get_by_test_id("refused-status")).to_have_text("503")
    expect(refused.get_by_test_id("refused-error")).to_have_text(f"{error['type']} {error['code']}")
    expect(refused.get_by_test_id("refused-message")).to_have_text(error["message"])
    expect(refused.get_by_test_id("refused-rules")).to_contain_text("carrier down for FR")

    status, otp = call("POST", f"{base}/otp", {"phoneNumber": FR}, KEY)  # the rule's next step
    assert status == 201, otp
    call("GET", f"{base}/otp/{otp['otpId']}", headers=KEY)  # accepted: not in the thread
    bubbles = tab.get_by_test_id("bubbles").locator(":scope > li")
    expect(bubbles).to_have_count(2)
    # In time order: the refused call, then the SMS of the call that worked.
    expect(bubbles.nth(0)).to_have_attribute("data-testid", "refused-call")
    expect(bubbles.nth(1)).to_have_attribute("data-otp-id", otp["otpId"])

    tab.reload()  # the same thread from GET /_sim/requests at load
    expect(tab.get_by_test_id("bubbles").locator(":scope > li")).to_have_count(2)
    expect(tab.get_by_test_id("bubbles").locator(":scope > li").nth(0)).to_have_attribute(
        "data-testid", "refused-call"
    )
    assert problems == []
    context.close()


def test_the_requests_view_lists_calls_filters_and_updates_live(browser: Any, base: str) -> None:
    assert call("POST", f"{base}/otp", {"phoneNumber": DE}, KEY)[0] == 201
    assert call("POST", f"{base}/otp", {"phoneNumber": "12"}, KEY)[0] == 400
    context, tab, problems = open_page(browser, base)
    tab.get_by_test_id("tab-requests").click()
    rows = tab.get_by_test_id("request-row")
    expect(rows).to_have_count(2)  # loaded at open, newest first
    expect(rows.nth(0).get_by_test_id("request-status")).to_have_text("400")
    expect(rows.nth(1).get_by_test_id("request-status")).to_have_text("201")

    status, _ = call("GET", f"{base}/otp/no-such-otp", headers=KEY)  # live: on top at once
    assert status == 404
    expect(rows).to_have_count(3)
    expect(rows.nth(0).get_by_test_id("request-call")).to_have_text("GET /otp/no-such-otp")
    expect(tab.get_by_test_id("requests-count")).to_have_text("3")

    tab.get_by_test_id("requests-status").select_option("4")
    expect(rows).to_have_count(2)
    tab.get_by_test_id("requests-status").select_option("2")
    expect(rows).to_have_count(1)
    tab.get_by_test_id("requests-status").select_option("")
    tab.get_by_test_id("requests-path").fill("no-such")
    expect(rows).to_have_count(1)
    tab.get_by_test_id("requests-path").fill("")

    # The raw JSON of a journal entry, as the journal has it.
    rows.nth(2).get_by_test_id("request-raw").click()
    dialog = tab.get_by_test_id("raw-dialog")
    expect(dialog).to_be_visible()
    entry = json.loads(dialog.get_by_test_id("raw-dialog-json").inner_text())
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/otp", 201)
    assert entry["body"] == {"phoneNumber": DE}
    assert entry["account"] == "browser"
    tab.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # One account's page asks for that account's journal and takes only its events.
    other, mine, _ = open_page(browser, base, "/?account=alice#requests")
    assert call("POST", f"{base}/otp", {"phoneNumber": DE}, {"X-API-KEY": "alice"})[0] == 201
    assert call("POST", f"{base}/otp", {"phoneNumber": DE}, {"X-API-KEY": "bob"})[0] == 201
    expect(rows).to_have_count(5)  # all accounts
    alice_rows = mine.get_by_test_id("request-row")
    expect(alice_rows).to_have_count(1)
    expect(alice_rows.first.locator("td.who")).to_have_text("alice")
    mine.reload()
    expect(mine.get_by_test_id("request-row")).to_have_count(1)
    other.close()
    assert problems == []
    context.close()


def test_a_request_body_and_error_are_shown_as_text(browser: Any, base: str) -> None:
    evil = '<img src=x onerror="window.__pwned=1">'
    put_scenario(base, DOWN_503)
    context, tab, problems = open_page(browser, base)
    template = f"{evil} {{{{pin}}}}"
    status, _ = call("POST", f"{base}/otp", {"phoneNumber": FR, "template": template}, KEY)
    assert status == 503, _
    status, _ = call("POST", f"{base}/otp", {"phoneNumber": evil}, KEY)
    assert status == 400
    status, answer = call("GET", f"{base}/nope/{quote(evil, safe='')}", headers=KEY)
    assert status == 404
    assert evil in answer["error"]["message"]  # the path, in the error's message
    # A number that is no number at all has no conversation (the journal keeps it as
    # sent in the body, and the Requests view lists it below).
    tab.get_by_test_id("conversation").filter(has_text=FR).click()
    refused = tab.get_by_test_id("refused-call")
    expect(refused).to_have_count(1)
    refused.get_by_test_id("raw").locator("summary").click()
    raw = json.loads(refused.get_by_test_id("raw-request").inner_text())
    assert raw["body"]["template"] == template
    tab.get_by_test_id("tab-requests").click()
    expect(tab.get_by_test_id("request-row")).to_have_count(3)
    expect(tab.locator("td.error").filter(has_text=evil)).to_have_count(1)
    expect(tab.get_by_test_id("request-call").filter(has_text=f"GET /nope/{evil}")).to_have_count(1)
    tab.get_by_test_id("request-row").first.get_by_test_id("request-raw").click()
    shown = json.loads(tab.get_by_test_id("raw-dialog-json").inner_text())
    assert shown["path"] == f"/nope/{evil}"
    assert tab.locator("img").count() == 0
    assert tab.evaluate("window.__pwned") is None
    assert problems == []
    context.close()


def test_the_api_reference_page_is_served_and_linked(browser: Any, base: str) -> None:
    context, tab, problems = open_page(browser, base)
    link = tab.get_by_test_id("api-reference")
    expect(link).to_have_attribute("href", "/_sim/api")
    tab.goto("/_sim/api")
    doc = tab.request.get(f"{base}/_sim/openapi.json").json()
    operations = tab.get_by_test_id("operation")
    count = sum(
        1 for item in doc["paths"].values() for m in item if m in ("get", "post", "put", "delete")
    )
    expect(operations).to_have_count(count)
    for path in doc["paths"]:
        assert tab.locator(f'[data-testid=operation][data-path="{path}"]').count() >= 1, path
    tab.locator('a[href="#post-otp"]').click()
    expect(tab.locator("#post-otp")).to_be_in_viewport()
    assert problems == []  # no CSP refusal, nothing missing
    context.close()
