"""Small HTTP helpers shared by the handlers: JSON in, JSON out, errors."""

from __future__ import annotations

import base64
import binascii
import codecs
from collections.abc import Mapping
from typing import Any, TypeVar

from aiohttp import web

from otpsim import jsoncodec
from otpsim.errors import E, ErrorSpec, ProviderError

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=jsoncodec.dumps(data), status=status, headers={"Content-Type": JSON_CONTENT_TYPE}
    )


def error_response(error: ProviderError) -> web.Response:
    response = json_response(error.body(), status=error.spec.status)
    response.headers.update(error.headers)
    return response


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is ``{}``.

    Anything else (invalid UTF-8, invalid JSON, JSON nested beyond reason, an array)
    is 400 with a message saying what was expected. A body over the configured size
    is 413 (aiohttp raises it while reading).
    """
    raw = await read_body(request)
    check_charset(request)
    if not raw.strip():
        return {}
    try:
        data = jsoncodec.loads(raw)
    except jsoncodec.JSONDecodeError as exc:
        raise ProviderError(E.BODY_INVALID, "Request body " + jsoncodec.explain(raw, exc)) from None
    if not isinstance(data, dict):
        raise ProviderError(
            E.BODY_INVALID, f"Request body must be a JSON object, not {type(data).__name__}"
        )
    return data


async def read_body(request: web.Request) -> bytes:
    """The whole request body; 413 (aiohttp's own) beyond ``client_max_size``.

    A small body has usually arrived with its headers: then it is taken from the
    stream's buffer at once, instead of through ``request.read()``'s chunk loop (a
    measurable part of a ``POST /otp``). Only one reader per request, then.
    """
    stream = request.content
    if stream.is_eof():
        raw = stream.read_nowait()
        limit = request.client_max_size
        if limit and len(raw) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(raw))
        return raw
    return await request.read()


N = TypeVar("N", int, float)


def check_charset(request: web.Request) -> None:
    """400 when the body's ``Content-Type`` names a charset Python does not know."""
    charset = request.charset
    if charset is None:
        return
    try:
        codecs.lookup(charset)
    except LookupError:
        raise ProviderError(
            E.BODY_INVALID, f"Unknown charset {charset!r} in Content-Type (send UTF-8)"
        ) from None


async def read_form(request: web.Request) -> Mapping[str, Any] | None:
    """A form body (urlencoded or multipart), or None when it cannot be read.

    An unknown charset is a 400 (``check_charset``)."""
    check_charset(request)
    try:
        return await request.post()
    except ValueError:  # e.g. a multipart body without its boundary
        return None


def query_number(
    request: web.Request, name: str, kind: type[N], *, default: N, low: N, high: N
) -> N:
    """A numeric query parameter within bounds; 400 ``invalid_param`` 1020 otherwise."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    what = "a whole number" if kind is int else "a number"
    try:
        value = kind(raw)
    except ValueError:
        raise ProviderError(E.SIM_INVALID_PARAM, f"'{name}' must be {what}") from None
    if not low <= value <= high:
        raise ProviderError(E.SIM_INVALID_PARAM, f"'{name}' must be from {low:g} to {high:g}")
    return value


def http_error_spec(status: int) -> ErrorSpec | None:
    """The catalog entry for an error aiohttp raised itself (routing, body size)."""
    return {
        404: E.ROUTE_NOT_FOUND,
        405: E.METHOD_NOT_ALLOWED,
        413: E.BODY_TOO_LARGE,
    }.get(status)


def basic_credentials(request: web.Request) -> tuple[str | None, str | None]:
    """The (id, secret) of an ``Authorization: Basic`` header, or (None, None)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None, None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value if scheme.lower() == "bearer" else None
