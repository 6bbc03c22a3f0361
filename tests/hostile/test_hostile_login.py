"""The login page's ``next``: only a path of this server is a place to return to.

Anything that a browser would resolve to another origin (scheme-relative ``//host``,
backslashes browsers read as slashes, absolute URLs, control characters that browsers
strip) lands on the inbox instead: no open redirect.
"""

from __future__ import annotations

from typing import Any

import pytest

from otpsim.config import Settings

HOSTILE = [
    "//evil.example/phish",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    " //evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "evil.example",
    "",
    "/" + "a" * 5000,
    "/\x00",
]


@pytest.fixture
async def guarded(make_client: Any) -> Any:
    return await make_client(Settings(admin_token="s3cret-admin"))


@pytest.mark.parametrize("target", HOSTILE)
async def test_a_foreign_next_lands_on_the_inbox(guarded: Any, target: str) -> None:
    resp = await guarded.post(
        "/_sim/login", data={"token": "s3cret-admin", "next": target}, allow_redirects=False
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/"


@pytest.mark.parametrize("target", HOSTILE)
async def test_a_foreign_next_is_not_put_in_the_form(guarded: Any, target: str) -> None:
    resp = await guarded.get("/_sim/login", params={"next": target})
    assert resp.status == 200
    page = await resp.text()
    assert 'name="next" value="/"' in page
    assert "evil" not in page


async def test_next_must_be_text_in_the_form(guarded: Any) -> None:
    resp = await guarded.post(
        "/_sim/login",
        data=b"token=s3cret-admin&next=%FF%FE",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        allow_redirects=False,
    )
    assert resp.status in (303, 400)
    if resp.status == 303:
        assert resp.headers["Location"] == "/"
