"""The live inbox in a real browser: SMS appear without a reload, badges change live,
the clock buttons work, a dropped websocket catches up, and message text stays text."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect
from support import call

KEY = {"X-API-KEY": "browser"}
FR, DE = "+33612345678", "+4915123456789"


def create(base: str, **body: Any) -> dict[str, Any]:
    status, otp = call("POST", f"{base}/otp", {"phoneNumber": FR, **body}, KEY)
    assert status == 201, otp
    return otp  # type: ignore[no-any-return]


def pin_of(base: str, otp_id: str) -> str:
    status, message = call("GET", f"{base}/_sim/messages/latest?otpId={otp_id}")
    assert status == 200
    return message["pin"]  # type: ignore[no-any-return]


def bubble(page: Any, otp_id: str) -> Any:
    return page.locator(f'[data-testid=sms][data-otp-id="{otp_id}"]')


def test_an_sms_appears_without_a_reload(page: Any, live: tuple[Any, str]) -> None:
    _, base = live
    expect(page.get_by_test_id("no-conversations")).to_be_visible()
    otp = create(base, template="Your ACME code is {{pin}}", **{"from": "ACME"})
    pin = pin_of(base, otp["otpId"])
    sms = bubble(page, otp["otpId"])
    expect(sms).to_be_visible()
    expect(sms.get_by_test_id("sms-text")).to_have_text(f"Your ACME code is {pin}")
    expect(sms.locator("mark.pin")).to_have_text(pin)  # the PIN highlighted in the text
    expect(sms.get_by_test_id("sender")).to_have_text("ACME")
    expect(sms).to_contain_text("1 part · GSM-7")
    expect(sms.get_by_test_id("otp-status")).to_have_text("PENDING")
    expect(sms.get_by_test_id("countdown")).to_have_text("expires in 5:00")  # frozen clock
    conversation = page.get_by_test_id("conversation").first
    expect(conversation).to_contain_text(FR)
    expect(conversation.get_by_test_id("country")).to_have_text("FR")


def test_the_badge_turns_verified_live(page: Any, live: tuple[Any, str]) -> None:
    _, base = live
    otp = create(base, maxAttempts=3, pinType="letters")
    sms = bubble(page, otp["otpId"])
    expect(sms.get_by_test_id("otp-status")).to_have_text("PENDING")
    call("POST", f"{base}/otp/{otp['otpId']}", {"pin": "0000"}, KEY)
    expect(sms.get_by_test_id("attempts")).to_have_text("attempts 1/3")
    call("POST", f"{base}/otp/{otp['otpId']}", {"pin": pin_of(base, otp["otpId"])}, KEY)
    expect(sms.get_by_test_id("otp-status")).to_have_text("VERIFIED")
    expect(sms.get_by_test_id("countdown")).to_have_text(re.compile(r"^since \d\d:\d\d:\d\d$"))


def test_advancing_the_clock_from_the_page_expires_another(
    page: Any, live: tuple[Any, str]
) -> None:
    _, base = live
    verified = create(base, ttl=600)
    call("POST", f"{base}/otp/{verified['otpId']}", {"pin": pin_of(base, verified["otpId"])}, KEY)
    short = create(base, ttl=60)
    sms = bubble(page, short["otpId"])
    expect(sms.get_by_test_id("countdown")).to_have_text("expires in 1:00")
    before = page.get_by_test_id("clock").inner_text()
    page.get_by_test_id("advance-1m").click()
    expect(sms.get_by_test_id("otp-status")).to_have_text("EXPIRED")
    expect(page.get_by_test_id("clock")).not_to_have_text(before)
    expect(bubble(page, verified["otpId"]).get_by_test_id("otp-status")).to_have_text("VERIFIED")


def test_a_dropped_websocket_reconnects_and_catches_up(page: Any, live: tuple[Any, str]) -> None:
    _, base = live
    # From now on the page's websocket goes through this route, which the test controls.
    network = {"up": True, "sockets": []}

    def route(ws: Any) -> None:
        if network["up"]:
            ws.connect_to_server()
            network["sockets"].append(ws)
        else:
            ws.close()

    page.route_web_socket(re.compile(r".*/_sim/ws$"), route)
    page.reload()
    expect(page.get_by_test_id("connection")).to_have_text("live")
    first = create(base)
    expect(bubble(page, first["otpId"])).to_be_visible()

    network["up"] = False
    network["sockets"][-1].close()
    expect(page.get_by_test_id("connection")).to_have_text("disconnected · reconnecting…")
    missed = create(base, phoneNumber=DE)  # published while the page is away
    call("DELETE", f"{base}/otp/{first['otpId']}", headers=KEY)
    page.wait_for_timeout(300)
    expect(page.get_by_test_id("conversation")).to_have_count(1)

    network["up"] = True
    expect(page.get_by_test_id("connection")).to_have_text("live", timeout=10_000)
    expect(page.get_by_test_id("conversation")).to_have_count(2)
    expect(page.get_by_test_id("conversation").first).to_contain_text(DE)
    page.get_by_test_id("conversation").filter(has_text=FR).click()
    expect(bubble(page, first["otpId"]).get_by_test_id("otp-status")).to_have_text("CANCELLED")
    assert missed["otpId"]


def test_message_text_stays_text(page: Any, live: tuple[Any, str]) -> None:
    _, base = live
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    evil = "<img src=x onerror=alert(1)> <script>alert(2)</script> {{pin}}"
    otp = create(base, template=evil, **{"from": "<b>bold</b>"})
    sms = bubble(page, otp["otpId"])
    expect(sms.get_by_test_id("sms-text")).to_contain_text("<img src=x onerror=alert(1)>")
    expect(sms.get_by_test_id("sender")).to_have_text("<b>bold</b>")
    assert (
        page.locator(
            "[data-testid=bubbles] img, [data-testid=bubbles] script, [data-testid=bubbles] b"
        ).count()
        == 0
    )
    page.wait_for_timeout(200)
    assert dialogs == []


def test_copy_pin_search_and_unread_counts(page: Any, live: tuple[Any, str]) -> None:
    _, base = live
    first = create(base)
    expect(bubble(page, first["otpId"])).to_be_visible()
    other = create(base, phoneNumber=DE, template="Dein Code {{pin}}")
    # The newest number moves to the top; the open conversation stays open.
    conversations = page.get_by_test_id("conversation")
    expect(conversations.first).to_contain_text(DE)
    expect(conversations.first.get_by_test_id("unread")).to_have_text("1")
    create(base, phoneNumber=DE, template="Dein Code {{pin}}")
    expect(conversations.first.get_by_test_id("unread")).to_have_text("2")

    conversations.first.click()
    expect(page.get_by_test_id("conversation-title")).to_contain_text(DE)
    expect(page.get_by_test_id("unread")).to_have_count(0)
    sms = bubble(page, other["otpId"])
    sms.get_by_test_id("copy-pin").click()
    expect(sms.get_by_test_id("copy-pin")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == pin_of(base, other["otpId"])

    page.get_by_test_id("search").fill("612345")
    expect(conversations).to_have_count(1)
    expect(conversations.first).to_contain_text(FR)
    page.get_by_test_id("search").fill("dein code")
    expect(conversations).to_have_count(1)
    expect(conversations.first).to_contain_text(DE)


def test_clear_and_reset_buttons(page: Any, live: tuple[Any, str]) -> None:
    _, base = live
    otp = create(base)
    expect(bubble(page, otp["otpId"])).to_be_visible()
    page.get_by_test_id("clear").click()
    page.get_by_test_id("confirm-ok").click()
    expect(page.get_by_test_id("conversation")).to_have_count(0)
    assert call("GET", f"{base}/otp/{otp['otpId']}", headers=KEY)[0] == 200  # OTPs stay
    create(base)
    expect(page.get_by_test_id("conversation")).to_have_count(1)
    page.get_by_test_id("reset").click()
    page.get_by_test_id("confirm-ok").click()
    expect(page.get_by_test_id("conversation")).to_have_count(0)
    assert call("GET", f"{base}/otp/{otp['otpId']}", headers=KEY)[0] == 404


def test_undelivered_and_delayed_sms_are_labelled(page: Any, live: tuple[Any, str]) -> None:
    _, base = live
    lost = create(base, phoneNumber="+15005550002")  # magic: never delivered
    late = create(base, phoneNumber="+15005550003")  # magic: 30 s late
    page.get_by_test_id("conversation").filter(has_text="+15005550002").click()
    expect(bubble(page, lost["otpId"]).get_by_test_id("delivery")).to_have_text(
        "undelivered: never reached the phone"
    )
    page.get_by_test_id("conversation").filter(has_text="+15005550003").click()
    expect(bubble(page, late["otpId"]).get_by_test_id("delivery")).to_have_text("queued")
    page.get_by_test_id("advance-1m").click()
    expect(bubble(page, late["otpId"]).get_by_test_id("delivery")).to_have_text("delivered")


def test_callback_attempts_are_shown(page: Any, live: tuple[Any, str]) -> None:
    _, base = live
    otp = create(base, otpCallbackUrl="http://127.0.0.1:9/otp-status")  # port 9: nobody there
    call("DELETE", f"{base}/otp/{otp['otpId']}", headers=KEY)
    attempt = bubble(page, otp["otpId"]).get_by_test_id("callback-attempt").first
    expect(attempt).to_contain_text("callback #1 connection failed")
    expect(attempt).to_contain_text("retry at")


def test_narrow_screen_shows_list_then_conversation(browser: Any, live: tuple[Any, str]) -> None:
    _, base = live
    create(base)
    context = browser.new_context(base_url=base, viewport={"width": 390, "height": 800})
    phone = context.new_page()
    phone.goto("/")
    list_item = phone.get_by_test_id("conversation").first
    expect(list_item).to_be_visible()
    expect(phone.get_by_test_id("bubbles")).to_be_hidden()
    list_item.click()
    expect(phone.get_by_test_id("bubbles")).to_be_visible()
    expect(phone.get_by_test_id("conversations")).to_be_hidden()
    phone.get_by_test_id("back").click()
    expect(phone.get_by_test_id("conversations")).to_be_visible()
    context.close()


def test_the_page_can_show_one_account(browser: Any, live: tuple[Any, str]) -> None:
    _, base = live
    context = browser.new_context(base_url=base)
    tab = context.new_page()
    tab.goto("/?account=alice")
    expect(tab.get_by_test_id("connection")).to_have_text("live")
    expect(tab.get_by_test_id("account")).to_have_text("account alice")
    call("POST", f"{base}/otp", {"phoneNumber": DE}, {"X-API-KEY": "bob"})
    status, mine = call("POST", f"{base}/otp", {"phoneNumber": FR}, {"X-API-KEY": "alice"})
    assert status == 201
    expect(bubble(tab, mine["otpId"])).to_be_visible()
    expect(tab.get_by_test_id("conversation")).to_have_count(1)
    context.close()


def test_signing_in_to_a_guarded_inbox(browser: Any, start_server: Any) -> None:
    _, base = start_server("--admin-token", "let-me-in", "--clock-frozen", "true")
    context = browser.new_context(base_url=base)
    tab = context.new_page()
    tab.goto("/")
    expect(tab.get_by_text("This simulator asks for its admin token.")).to_be_visible()
    tab.fill("input[name=token]", "wrong")
    tab.click("button[type=submit]")
    expect(tab.get_by_text("That is not the admin token.")).to_be_visible()
    tab.fill("input[name=token]", "let-me-in")
    tab.click("button[type=submit]")
    expect(tab.get_by_test_id("connection")).to_have_text("live")  # the websocket got in too
    status, otp = call("POST", f"{base}/otp", {"phoneNumber": FR}, KEY)
    assert status == 201
    expect(bubble(tab, otp["otpId"])).to_be_visible()
    context.close()
