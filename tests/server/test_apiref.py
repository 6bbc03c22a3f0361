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
