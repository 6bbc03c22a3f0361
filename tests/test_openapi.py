"""The OpenAPI document: it names every route, and the live server keeps its word.

The schemathesis run fuzzes a real ``otpsim serve``: no answer may be a 5xx, and every
answer must match the document (status, content type, body schema).
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support import call, launch, stop

from otpsim.config import Settings
from otpsim.server.app import create_app
from otpsim.server.control import openapi_document

NO_MAGIC = "network:\n  magic_numbers: false\n"
LOOPBACK_HOOK = "http://127.0.0.1:9/otp-status"  # nobody listens; nothing leaves the machine


def route_key(method: str, path: str) -> tuple[str, str]:
    return method, re.sub(r"\{[^}]+\}", "{}", path)


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    app = create_app(Settings())
    routes = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method == "HEAD" or path is None:
            continue  # HEAD twins of GETs, and the static files
        routes.add(route_key(route.method, path))
    doc = openapi_document(60.0)
    documented = {
        route_key(method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in ("get", "post", "put", "delete", "patch")
    }
    assert routes == documented


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("fuzz")
    scenario = folder / "no-magic.yaml"
    scenario.write_text(NO_MAGIC)
    proc, base = launch(
        folder, "--max-wait", str(MAX_WAIT), "--scenario", str(scenario), "--log-level", "warning"
    )
    try:
        yield base
    finally:
        stop(proc)


def test_the_served_document_has_this_servers_limits(live_api: str) -> None:
    status, doc = call("GET", f"{live_api}/_sim/openapi.json")
    assert status == 200
    assert doc == openapi_document(MAX_WAIT)
    assert doc["openapi"].startswith("3.1")
    wait = next(
        p
        for p in doc["paths"]["/_sim/messages/latest"]["get"]["parameters"]
        if p.get("name") == "wait"
    )
    assert wait["schema"]["maximum"] == 0.2


MAX_WAIT = 0.2
# The same document the server serves (the served one is checked against it above);
# built at import because schemathesis parametrizes tests at collection.
schema = (
    schemathesis.openapi.from_dict(openapi_document(MAX_WAIT))
    # Not fuzzed: the websocket upgrade, and activating fuzzed scenarios (a random one
    # may, by design, make the API answer 500 or wait 30 s).
    .exclude(path="/_sim/ws")
    .exclude(path="/_sim/scenario", method="PUT")
)


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_live_api_keeps_to_its_document(case: Any, live_api: str) -> None:
    if isinstance(case.body, dict) and isinstance(case.body.get("otpCallbackUrl"), str):
        case.body["otpCallbackUrl"] = LOOPBACK_HOOK
    case.call_and_validate(
        base_url=live_api,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )


def test_the_document_file_ships_with_the_package() -> None:
    import otpsim

    assert (Path(otpsim.__file__).parent / "openapi.yaml").exists()


def _query_reads(function: Any, seen: set[Any] | None = None) -> set[str]:
    """The query parameters ``function`` reads (``request.query.get("x")``,
    ``request.query["x"]``, ``query_number(request, "x", ...)``), with those of the otpsim
    functions it calls, found in their source."""
    seen = set() if seen is None else seen
    if function in seen or not getattr(function, "__module__", "").startswith("otpsim"):
        return set()
    seen.add(function)
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    module = sys.modules[function.__module__]
    aliases = {"query"}  # names bound to request.query (q = request.query)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and ast.unparse(node.value).endswith(".query"):
            aliases |= {t.id for t in node.targets if isinstance(t, ast.Name)}

    def is_query(node: ast.expr) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "query") or (
            isinstance(node, ast.Name) and node.id in aliases
        )

    found: set[str] = set()
    for node in ast.walk(tree):
        key: ast.expr | None = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("get", "getone", "getall") and is_query(node.func.value):
                key = node.args[0] if node.args else None
        elif isinstance(node, ast.Subscript) and is_query(node.value):
            key = node.slice
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "query_number" and len(node.args) > 1:
                key = node.args[1]
            else:
                callee = getattr(module, node.func.id, None)
                if inspect.isfunction(callee):
                    found |= _query_reads(callee, seen)
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            found.add(key.value)
    return found


def _documented_query(doc: dict[str, Any], path: str, method: str) -> set[str]:
    item = doc["paths"][path]
    names = set()
    for parameter in [*item.get("parameters", []), *item[method].get("parameters", [])]:
        if "$ref" in parameter:
            parameter = doc["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[1]]
        if parameter["in"] == "query":
            names.add(parameter["name"])
    return names


def test_every_query_parameter_a_control_handler_reads_is_documented() -> None:
    app = create_app(Settings())
    doc = openapi_document(60.0)
    by_key = {
        route_key(method.upper(), path): (path, method)
        for path, item in doc["paths"].items()
        for method in item
        if method in ("get", "post", "put", "delete")
    }
    missing, checked = [], 0
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method == "HEAD" or path is None or not path.startswith("/_sim/"):
            continue
        read = _query_reads(route.handler)
        checked += bool(read)
        documented = _documented_query(doc, *by_key[route_key(route.method, path)])
        missing += [f"{route.method} {path} ?{name}=" for name in sorted(read - documented)]
    assert checked >= 8  # the scan sees the handlers' reads (it is not silently empty)
    assert missing == []
