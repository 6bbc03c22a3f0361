"""The inbox page as a QA cockpit (#16 item 3): the active scenario, confirmations, a
visible dead server, phone width, raw JSON, version and API links, favicon, login, dark
mode. Each test drives Debian's Chromium against a real ``otpsim serve``."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect
from support import call

from otpsim import __version__

KEY = {"X-API-KEY": "browser"}
FR, DE = "+33612345678", "+4915123456789"
PHONE = {"width": 390, "height": 800}


def create(base: str, key: str = "browser", **body: Any) -> dict[str, Any]:
    status, otp = call("POST", f"{base}/otp", {"phoneNumber": FR, **body}, {"X-API-KEY": key})
    assert status == 201, otp
    return otp  # type: ignore[no-any-return]


def bubble(page: Any, otp_id: str) -> Any:
    return page.locator(f'[data-testid=sms][data-otp-id="{otp_id}"]')


def open_page(browser: Any, base: str, path: str = "/", **options: Any) -> tuple[Any, Any]:
    context = browser.new_context(base_url=base, **options)
    tab = context.new_page()
    tab.goto(path)
    expect(tab.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    return context, tab


def put_scenario(base: str, text: str) -> None:
    import urllib.request

    request = urllib.request.Request(f"{base}/_sim/scenario", data=text.encode(), method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def until_the_journal_lands(context: Any) -> None:
    """TEMPORARY, until the request journal (GET /_sim/requests) is merged; then delete
    it and its calls. The page asks for the journal; this branch's server answers 404,
    which the tests that allow no failed load would count."""
    from otpsim.server.control import openapi_document

    if "/_sim/requests" not in openapi_document(60.0)["paths"]:
        context.route("**/_sim/requests?*", lambda route: route.fulfill(json={"requests": []}))


def luminance(css_color: str) -> float:
    r, g, b = (int(x) for x in re.findall(r"\d+", css_color)[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_the_scenario_banner_follows_the_active_scenario(page: Any, live: tuple[Any, str]) -> None:
    _, base = live
    banner = page.get_by_test_id("scenario")
    expect(banner).to_be_hidden()
    put_scenario(base, "name: flaky <carrier>\nnetwork:\n  balance: 0.5\n")
    expect(banner).to_be_visible()
    expect(banner.get_by_test_id("scenario-name")).to_have_text("flaky <carrier>")
    rules = banner.get_by_role("link")
    expect(rules).to_have_attribute("href", "/_sim/scenario")
    assert page.request.get(f"{base}/_sim/scenario").json()["name"] == "flaky <carrier>"
    page.reload()  # at load, from GET /_sim/scenario
    expect(page.get_by_test_id("scenario-name")).to_have_text("flaky <carrier>")
    assert call("DELETE", f"{base}/_sim/scenario")[0] == 200
    expect(page.get_by_test_id("scenario")).to_be_hidden()


def test_reset_and_clear_ask_first_and_cancel_keeps_the_data(
    page: Any, live: tuple[Any, str]
) -> None:
    _, base = live
    otp = create(base)
    expect(bubble(page, otp["otpId"])).to_be_visible()
    dialog = page.get_by_test_id("confirm")

    page.get_by_test_id("reset").click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Reset")
    expect(dialog.get_by_test_id("confirm-cancel")).to_be_focused()  # the safe default
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.get_by_test_id("clear").click()
    dialog.get_by_test_id("confirm-cancel").click()
    expect(dialog).to_be_hidden()
    page.wait_for_timeout(300)  # nothing was sent: the data stays
    expect(page.get_by_test_id("conversation")).to_have_count(1)
    assert call("GET", f"{base}/otp/{otp['otpId']}", headers=KEY)[0] == 200
    assert call("GET", f"{base}/_sim/messages")[1]["messages"]

    page.get_by_test_id("reset").click()  # confirmed with the keyboard alone
    expect(dialog).to_be_visible()
    page.keyboard.press("Tab")
    expect(dialog.get_by_test_id("confirm-ok")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("conversation")).to_have_count(0)
    assert call("GET", f"{base}/otp/{otp['otpId']}", headers=KEY)[0] == 404


def test_a_failed_action_is_shown_not_swallowed(page: Any, live: tuple[Any, str]) -> None:
    body = {"type": "invalid_request", "code": 1099, "message": "The clock is stuck"}
    page.route(
        "**/_sim/clock",
        lambda route: (
            route.fulfill(status=409, json=body)
            if route.request.method == "POST"
            else route.continue_()
        ),
    )
    page.get_by_test_id("advance-1m").click()
    toast = page.get_by_test_id("notice")
    expect(toast).to_be_visible()
    expect(toast).to_have_attribute("role", "alert")
    expect(toast).to_contain_text("+1 min failed")
    expect(toast).to_contain_text("The clock is stuck")


def test_a_stopped_server_is_shown_stopped_and_comes_back(browser: Any, start_server: Any) -> None:
    proc, base = start_server()  # the clock runs
    context, tab = open_page(browser, base)
    clock = tab.get_by_test_id("clock")
    first = clock.inner_text()
    expect(clock).not_to_have_text(first, timeout=5_000)  # alive: it ticks

    proc.kill()
    proc.wait(timeout=10)
    connection = tab.get_by_test_id("connection")
    expect(connection).to_have_attribute("data-state", "down")
    expect(connection).to_contain_text("disconnected")
    expect(tab.get_by_test_id("offline")).to_be_visible()
    expect(clock).to_have_attribute("data-stopped", "true")
    stopped = clock.inner_text()
    tab.wait_for_timeout(1_500)  # a running clock would have moved by now
    assert clock.inner_text() == stopped
    tab.get_by_test_id("advance-1m").click()
    expect(tab.get_by_test_id("notice")).to_contain_text("+1 min failed")

    port = str(urlsplit(base).port)
    start_server("--port", port)  # back on the same address: the page reconnects
    expect(connection).to_have_attribute("data-state", "live", timeout=15_000)
    expect(tab.get_by_test_id("offline")).to_be_hidden()
    expect(clock).not_to_have_attribute("data-stopped", "true")
    expect(clock).not_to_have_text(stopped, timeout=5_000)
    context.close()


def test_phone_width_keeps_unread_badges_and_a_compact_header(
    browser: Any, live: tuple[Any, str]
) -> None:
    _, base = live
    create(base)
    context, phone = open_page(browser, base, viewport=PHONE)
    conversations = phone.get_by_test_id("conversation")
    expect(conversations.first.get_by_test_id("unread")).to_have_text("1")  # not auto-read
    create(base, phoneNumber=DE)
    expect(conversations).to_have_count(2)
    expect(phone.get_by_test_id("unread")).to_have_count(2)
    header = phone.locator("header.topbar").bounding_box()
    assert header["height"] <= 0.15 * PHONE["height"], header  # was about a third
    reset = phone.get_by_test_id("reset").bounding_box()
    clear = phone.get_by_test_id("clear").bounding_box()
    assert abs(reset["y"] - clear["y"]) < 2, (reset, clear)  # Reset not on a row of its own

    conversations.filter(has_text=DE).click()
    phone.get_by_test_id("back").click()
    expect(conversations.filter(has_text=DE).get_by_test_id("unread")).to_have_count(0)
    expect(conversations.filter(has_text=FR).get_by_test_id("unread")).to_have_text("1")
    create(base, phoneNumber=DE)  # arrives while the list shows: unread again
    expect(conversations.filter(has_text=DE).get_by_test_id("unread")).to_have_text("1")
    context.close()


def test_expired_shows_when_it_expired(page: Any, live: tuple[Any, str]) -> None:
    _, base = live
    otp = create(base, ttl=60)
    call("POST", f"{base}/_sim/clock", {"advance": 600})
    sms = bubble(page, otp["otpId"])
    expect(sms.get_by_test_id("otp-status")).to_have_text("EXPIRED")
    _status, otps = call("GET", f"{base}/_sim/otps")
    expires = next(o for o in otps["otps"] if o["otpId"] == otp["otpId"])["dateExpires"]
    expect(sms.get_by_test_id("countdown")).to_have_text(f"since {expires[11:19]}")


def test_the_list_shows_times_and_bubbles_show_their_account(
    page: Any, live: tuple[Any, str]
) -> None:
    _, base = live
    alice = create(base, "alice")
    call("POST", f"{base}/_sim/clock", {"advance": 75})
    bob = create(base, "bob")
    expect(bubble(page, bob["otpId"])).to_be_visible()
    _status, latest = call("GET", f"{base}/_sim/messages/latest?otpId={bob['otpId']}")
    row = page.get_by_test_id("conversation")
    expect(row).to_have_count(1)  # one number, one thread, two accounts
    expect(row.get_by_test_id("conversation-time")).to_have_text(latest["createdAt"][11:19])
    expect(bubble(page, alice["otpId"]).get_by_test_id("sms-account")).to_have_text("alice")
    expect(bubble(page, bob["otpId"]).get_by_test_id("sms-account")).to_have_text("bob")


def test_one_account_view_does_not_repeat_the_account(browser: Any, live: tuple[Any, str]) -> None:
    _, base = live
    context, tab = open_page(browser, base, "/?account=alice")
    mine = create(base, "alice")
    expect(bubble(tab, mine["otpId"])).to_be_visible()
    expect(tab.get_by_test_id("sms-account")).to_have_count(0)
    context.close()


def test_raw_json_of_message_otp_and_callback_attempt(page: Any, live: tuple[Any, str]) -> None:
    _, base = live
    otp = create(base, otpCallbackUrl="http://127.0.0.1:9/otp-status")  # nobody listens
    call("DELETE", f"{base}/otp/{otp['otpId']}", headers=KEY)
    sms = bubble(page, otp["otpId"])
    expect(sms.get_by_test_id("callback-attempt").first).to_be_visible()
    sms.get_by_test_id("raw").locator("summary").click()
    message = json.loads(sms.get_by_test_id("raw-message").inner_text())
    assert message["otpId"] == otp["otpId"]
    assert "pin" in message
    expect(sms.get_by_test_id("raw-otp")).to_contain_text('"status": "CANCELLED"')
    assert json.loads(sms.get_by_test_id("raw-otp").inner_text())["otpId"] == otp["otpId"]
    attempts = json.loads(sms.get_by_test_id("raw-callbacks").inner_text())
    assert attempts[0]["otpIds"] == [otp["otpId"]]
    assert attempts[0]["attempts"][0]["number"] == 1
    create(base, phoneNumber=DE)  # a re-render keeps the raw view open
    expect(page.get_by_test_id("conversation")).to_have_count(2)
    expect(sms.get_by_test_id("raw-message")).to_be_visible()


def test_version_api_links_and_favicon(browser: Any, live: tuple[Any, str]) -> None:
    _, base = live
    failures: list[str] = []
    context = browser.new_context(base_url=base)
    tab = context.new_page()
    tab.on("response", lambda r: failures.append(r.url) if r.status >= 400 else None)
    tab.on("console", lambda m: failures.append(m.text) if m.type == "error" else None)
    until_the_journal_lands(context)
    tab.goto("/")
    expect(tab.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    expect(tab.get_by_test_id("version")).to_have_text(f"otpsim {__version__}")
    api = tab.get_by_test_id("openapi")
    expect(api).to_have_attribute("href", "/_sim/openapi.json")
    assert tab.request.get(f"{base}/_sim/openapi.json").json()["info"]["version"] == __version__
    icon = tab.locator("link[rel=icon]").get_attribute("href")
    for path in (icon, "/favicon.ico"):
        response = tab.request.get(f"{base}{path}")
        assert response.status == 200, path
        assert response.headers["content-type"].startswith("image/"), path
    assert failures == []
    context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_page_follows_the_colour_scheme(
    browser: Any, live: tuple[Any, str], scheme: str
) -> None:
    _, base = live
    create(base)
    context, tab = open_page(browser, base, color_scheme=scheme)
    background = luminance(tab.evaluate("getComputedStyle(document.body).backgroundColor"))
    sms = tab.get_by_test_id("sms-text").first
    text = luminance(sms.evaluate("e => getComputedStyle(e).color"))
    if scheme == "dark":
        assert background < 0.2, background
        assert text > 0.7, text
    else:
        assert background > 0.8, background
        assert text < 0.3, text
    context.close()


def test_login_is_styled_and_returns_to_where_the_user_was(browser: Any, start_server: Any) -> None:
    _, base = start_server("--admin-token", "let-me-in", "--clock-frozen", "true")
    context = browser.new_context(base_url=base, color_scheme="dark")
    until_the_journal_lands(context)
    tab = context.new_page()
    problems: list[str] = []  # CSP refusals, and anything the page failed to load
    tab.on("console", lambda m: problems.append(m.text) if "Refused" in m.text else None)
    tab.on(
        "response",
        lambda r: (
            problems.append(r.url)
            if r.status >= 400 and r.request.resource_type != "document"
            else None
        ),
    )
    tab.goto("/?account=alice")
    expect(tab.get_by_text("This simulator asks for its admin token.")).to_be_visible()
    button = tab.locator("button[type=submit]")
    assert luminance(button.evaluate("e => getComputedStyle(e).backgroundColor")) < 0.6  # styled
    assert luminance(tab.evaluate("getComputedStyle(document.body).backgroundColor")) < 0.2
    tab.fill("input[name=token]", "wrong")
    tab.click("button[type=submit]")
    expect(tab.get_by_text("That is not the admin token.")).to_be_visible()
    tab.fill("input[name=token]", "let-me-in")
    tab.click("button[type=submit]")
    expect(tab.get_by_test_id("account")).to_have_text("account alice")
    assert urlsplit(tab.url).path == "/"
    assert urlsplit(tab.url).query == "account=alice"
    assert problems == []  # no CSP refusals, nothing missing

    # Elsewhere is not a place to return to: a foreign next lands on the inbox.
    tab.context.clear_cookies()
    tab.goto("/_sim/login?next=//evil.example/phish")
    tab.fill("input[name=token]", "let-me-in")
    tab.click("button[type=submit]")
    expect(tab.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    assert tab.url == f"{base}/"
    context.close()
