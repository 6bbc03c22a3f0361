"""``/_sim/api``: the OpenAPI document as a plain HTML page, rendered here.

A browsable reference needs no CDN and no script: the document (``otpsim/openapi.yaml``,
as ``/_sim/openapi.json`` serves it) is turned into a view model of plain strings and
rendered with jinja2, autoescaped, under the same strict Content-Security-Policy as the
inbox (and a stricter one: no script at all).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup, escape

from otpsim import __version__
from otpsim.server.control import openapi_document
from otpsim.server.keys import SIM


def code_spans(text: str) -> Markup:
    """``text`` with its inline code spans (between a pair of backticks) as ``<code>``,
    every piece escaped; a backtick without a partner stays a backtick. The document's
    descriptions use no other markdown."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an odd count of backticks: the last one is plain text
        parts[-2:] = [parts[-2] + "`" + parts[-1]]
    html = Markup()
    for i, part in enumerate(parts):
        html += Markup("<code>%s</code>") % part if i % 2 else escape(part)
    return html


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("otpsim.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_env.filters["code"] = code_spans
METHODS = ("get", "post", "put", "patch", "delete")
CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'self'; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class Schema:
    """A schema as shown: a link to a named one (``ref``), or its JSON text."""

    ref: str | None
    text: str


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: str
    required: bool
    schema: Schema
    description: str


@dataclass(frozen=True, slots=True)
class Body:
    content_type: str
    schema: Schema


@dataclass(frozen=True, slots=True)
class Answer:
    status: str
    description: str
    bodies: list[Body]


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    anchor: str
    tag: str
    summary: str
    description: str
    auth: str | None
    params: list[Param] = field(default_factory=list)
    request: list[Body] = field(default_factory=list)
    required_body: bool = False
    answers: list[Answer] = field(default_factory=list)


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    """``node`` with a local ``$ref`` followed (``#/components/...``), else itself."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node = target
    return node


def _schema(node: Any) -> Schema:
    if isinstance(node, dict) and isinstance(node.get("$ref"), str):
        return Schema(_ref_name(node["$ref"]), _ref_name(node["$ref"]))
    return Schema(None, json.dumps(node, ensure_ascii=False, sort_keys=False))


def _text(node: Any, key: str) -> str:
    value = node.get(key, "") if isinstance(node, dict) else ""
    return value.strip() if isinstance(value, str) else ""


def _bodies(content: Any) -> list[Body]:
    if not isinstance(content, dict):
        return []
    return [Body(str(kind), _schema(media.get("schema", {}))) for kind, media in content.items()]


def _auth(doc: dict[str, Any], operation: dict[str, Any]) -> str | None:
    """What the operation's security entries (or the document's) accept, in the words of
    each scheme's description; "none" for an explicitly open one; None if neither says."""
    requirements = operation.get("security", doc.get("security"))
    if not isinstance(requirements, list):
        return None
    schemes = doc.get("components", {}).get("securitySchemes", {})
    ways, optional = [], not requirements
    for requirement in requirements:
        if not requirement:
            optional = True  # {}: no credential is a way too
            continue
        names = [_text(schemes.get(name), "description") or name for name in requirement]
        ways.append(" and ".join(names))
    if not ways:
        return "none"
    return "; or ".join(ways) + ("; otherwise none" if optional else "")


def operations(doc: dict[str, Any]) -> list[Operation]:
    """Every operation of the document, in its order (paths, then methods)."""
    found = []
    for path, item in doc.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method in METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            params = []
            for raw in [*shared, *operation.get("parameters", [])]:
                p = _resolve(doc, raw)
                params.append(
                    Param(
                        str(p.get("name", "")),
                        str(p.get("in", "")),
                        bool(p.get("required", False)),
                        _schema(p.get("schema", {})),
                        _text(p, "description"),
                    )
                )
            request = _resolve(doc, operation.get("requestBody", {}))
            answers = []
            for status, raw in operation.get("responses", {}).items():
                answer = _resolve(doc, raw)
                bodies = _bodies(answer.get("content"))
                answers.append(Answer(str(status), _text(answer, "description"), bodies))
            tags = operation.get("tags") or ["other"]
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    anchor=re.sub(r"[^A-Za-z0-9]+", "-", f"{method}{path}").strip("-"),
                    tag=str(tags[0]),
                    summary=_text(operation, "summary"),
                    description=_text(operation, "description"),
                    auth=_auth(doc, operation),
                    params=params,
                    request=_bodies(request.get("content")),
                    required_body=bool(request.get("required", False)),
                    answers=answers,
                )
            )
    return found


def view_model(doc: dict[str, Any]) -> dict[str, Any]:
    """What the template shows: plain strings and lists (autoescaped when rendered)."""
    ops = operations(doc)
    tags = [str(t.get("name")) for t in doc.get("tags", [])]
    tags += sorted({op.tag for op in ops} - set(tags))
    schemas = doc.get("components", {}).get("schemas", {})
    return {
        "info": doc.get("info", {}),
        "groups": [
            (tag, [op for op in ops if op.tag == tag])
            for tag in tags
            if any(op.tag == tag for op in ops)
        ],
        "schemas": [
            (name, json.dumps(s, indent=2, ensure_ascii=False)) for name, s in schemas.items()
        ],
        "version": __version__,
    }


async def page(request: web.Request) -> web.Response:
    """``GET /_sim/api``: the API reference."""
    doc = openapi_document(request.app[SIM].settings.max_wait)
    html = _env.get_template("api.html").render(**view_model(doc))
    response = web.Response(text=html, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = CSP
    return response
