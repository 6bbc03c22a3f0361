"""Real-browser fixtures: Debian's Chromium driven by Playwright.

The browser is started per test: Playwright's sync API holds an event loop while it
runs, and a longer-lived one would stop pytest-asyncio's tests from running theirs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def live(start_server: Any) -> tuple[Any, str]:
    """A fresh simulator process with a frozen clock: (process, base URL)."""
    return start_server(env={"OTPSIM_CLOCK_FROZEN": "true"})  # type: ignore[no-any-return]


@pytest.fixture
def page(browser: Any, live: tuple[Any, str]) -> Iterator[Any]:
    """The inbox page, loaded and live (its websocket connected)."""
    from playwright.sync_api import expect

    _, base = live
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto("/")
    expect(tab.get_by_test_id("connection")).to_have_text("live")
    yield tab
    context.close()
    assert errors == [], errors
