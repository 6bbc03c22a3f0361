"""``/_sim/api``: the OpenAPI document as a browsable page served by otpsim itself
(#16 item 3): every path and method, their parameters and responses, as escaped text
under a strict policy, behind the admin token like the inbox."""

from __future__ import annotations

import html
import re
from typing import Any

from otpsim.config import Settings
from otpsim.server.apiref import _env, view_model
from otpsim.server.control import openapi_document


def operations_on_page(page: str) -> set[tuple[str, str]]:
    found = re.findall(r'data-testid="operation" data-method="(\w+)" data-path="([^"]*)"', page)
    return {(method, html.unescape(path)) for method, path in found}


async def test_the_page_shows_every_path_and_method_of_the_document(client: Any) -> None:
    resp = await client.get("/_sim/api")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    doc = openapi_document(60.0)
    expected = {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert operations_on_page(page) == expected
    assert ("GET", "/_sim/api") in expected  # it documents itself
    for name in doc["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    # Parameters (path-level ones too) and responses with their descriptions.
    verify = page.split('id="post-otp-otpId"')[1].split("</section>")[0]
    assert "<code>otpId</code>" in verify
    assert "The PIN was right." in verify
    assert 'href="#schema-Error"' in verify
    assert "/_sim/openapi.json" in page


async def test_the_page_loads_nothing_and_runs_no_script(client: Any) -> None:
    resp = await client.get("/_sim/api")
    policy = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src" not in policy  # default-src 'none': no script at all
    page = await resp.text()
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing from elsewhere


def test_every_text_of_the_document_is_escaped() -> None:
    doc = openapi_document(60.0)
    evil = '<img src=x onerror="alert(1)">'
    doc["info"]["description"] = evil
    doc["paths"][f"/x/{evil}"] = {
        "get": {
            "summary": evil,
            "parameters": [{"name": evil, "in": "query", "schema": {"enum": [evil]}}],
            "responses": {"200": {"description": evil}},
        }
    }
    doc["components"]["schemas"][evil] = {"description": evil}
    page = _env.get_template("api.html").render(**view_model(doc))
    assert "<img" not in page
    assert page.count("&lt;img src=x onerror=") >= 5


async def test_behind_the_admin_token_it_asks_to_sign_in_and_comes_back(make_client: Any) -> None:
    guarded = await make_client(Settings(admin_token="s3cret-admin"))
    resp = await guarded.get("/_sim/api")
    assert resp.status == 401
    page = await resp.text()
    assert 'action="/_sim/login"' in page
    assert 'value="/_sim/api"' in page  # where to return
    signed = await guarded.post(
        "/_sim/login", data={"token": "s3cret-admin", "next": "/_sim/api"}, allow_redirects=False
    )
    assert signed.status == 303
    assert signed.headers["Location"] == "/_sim/api"
    assert (await guarded.get("/_sim/api")).status == 200


def section(page: str, anchor: str) -> str:
    return page.split(f'id="{anchor}"')[1].split("</section>")[0]


async def test_inline_code_in_descriptions_is_code_not_backticks(client: Any) -> None:
    page = await (await client.get("/_sim/api")).text()
    journal = section(page, "get-sim-requests")
    assert "<code>pins=show</code>" in journal
    described = page.split("<main>")[1].split('<h2 class="group">schemas</h2>')[0]
    assert "`" not in described  # no raw markdown left (the schemas are JSON text)
    assert "see docs/scenarios.md." in section(page, "put-sim-scenario")  # plain text


def test_code_spans_are_escaped_and_an_odd_backtick_stays_text() -> None:
    doc = openapi_document(60.0)
    doc["paths"]["/x"] = {
        "get": {
            "description": 'a `<img src=x onerror="alert(1)">` b ` c',
            "responses": {"200": {"description": "`<b>`"}},
        }
    }
    page = _env.get_template("api.html").render(**view_model(doc))
    x = section(page, "get-x")
    assert "a <code>&lt;img src=x onerror=&#34;alert(1)&#34;&gt;</code> b ` c" in x
    assert "<code>&lt;b&gt;</code>" in x
    assert "<img" not in page
    assert "<b>" not in page


async def test_authentication_shows_what_each_endpoint_takes(client: Any) -> None:
    page = await (await client.get("/_sim/api")).text()
    create = section(page, "post-otp")
    assert "X-API-KEY" in create
    assert "bearer token" in create
    assert "HTTP basic" in section(page, "post-oauth-token")
    for anchor in ("get-sim-messages", "post-sim-clock", "put-sim-scenario", "get-sim-api"):
        assert "admin token" in section(page, anchor), anchor
    assert "admin token" not in section(page, "get-sim-health")  # open even with one
    sections = re.findall(r'<section class="op" id="([^"]+)"(.*?)</section>', page, re.S)
    open_ones = {anchor for anchor, text in sections if "Authentication: none<" in text}
    assert open_ones == {"get-sim-health", "get-sim-login", "post-sim-login", "get-favicon-ico"}


def test_no_authentication_line_where_the_document_says_nothing() -> None:
    doc = openapi_document(60.0)
    doc.pop("security")
    doc["paths"]["/x"] = {"get": {"responses": {"200": {"description": "ok"}}}}
    page = _env.get_template("api.html").render(**view_model(doc))
    assert "Authentication" not in section(page, "get-x")
