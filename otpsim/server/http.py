"""Small HTTP helpers shared by the handlers: JSON in, JSON out, errors."""

from __future__ import annotations

import base64
import codecs
from collections.abc import Mapping
from typing import Any, TypeVar

import aiohttp
from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.compression_utils import MAX_SYNC_CHUNK_SIZE
from aiohttp.helpers import must_be_empty_body, rfc822_formatted_time, should_remove_content_length
from aiohttp.http import SERVER_SOFTWARE, HttpVersion10, HttpVersion11
from multidict import CIMultiDict

from otpsim import jsoncodec
from otpsim.errors import E, ErrorSpec, ProviderError

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
# Every JSON answer's first header. ``web.Response`` copies the headers it is given into
# a new ``CIMultiDict`` whatever they are; from a ``CIMultiDict`` that copy is cheaper
# than from a dict (the name's case-folded key is computed once, here).
_JSON_HEADERS: CIMultiDict[str] = CIMultiDict({"Content-Type": JSON_CONTENT_TYPE})

# A request's body as read (for the request journal: it parses nothing again). Declared
# here, beside their readers, and gathered in ``keys`` (this module imports no keys).
BODY = web.RequestKey("body", dict[str, Any])  # the parsed JSON object
RAW_BODY = web.RequestKey("raw_body", bytes)  # the bytes, parsed or not


def request_state(request: web.Request) -> dict[Any, Any]:
    """What handlers and the middleware keep on a request (``request[KEY]``), as the dict
    it is: ``.get(KEY)`` on it is one C call, where ``request.get(KEY)`` runs the
    ``Mapping`` mixin's Python and, for a key not set, raises and catches a ``KeyError``
    (a microsecond each, several per request). Read it only; write with ``request[KEY]``.
    (aiohttp's ``BaseRequest._state``: ``tests/server/test_request_path.py`` checks it.)"""
    return request._state


def json_response(data: Any, status: int = 200) -> web.Response:
    try:
        body = jsoncodec.dumps(data)
    except jsoncodec.JSONEncodeError:
        # A string that is not Unicode text (a lone surrogate: bytes that were not UTF-8)
        # got this far; answer it with U+FFFD in its place rather than fail the answer.
        body = jsoncodec.dumps(_scrub(data))
    if _CHECKED_AIOHTTP:
        return JsonResponse(body, status)
    return web.Response(body=body, status=status, headers=_JSON_HEADERS)


# JsonResponse takes a few of aiohttp's private steps itself; it is used only on the
# aiohttp minor version that tests/server/test_answer_head.py has checked it against
# byte for byte. On another (a newer aiohttp installed later), answers take aiohttp's own
# path: the same bytes, a few microseconds dearer.
_CHECKED_AIOHTTP = aiohttp.__version__.startswith("3.14.")


class JsonResponse(web.Response):
    """``web.Response(body=body, status=status, headers={"Content-Type": JSON})``, with
    aiohttp's steps from the handler's return to the socket taken in fewer calls.

    aiohttp builds an answer through a chain of coroutines (``prepare``, ``Response._start``,
    ``StreamResponse._start``, ``_prepare_headers``, ``_write_headers``; then ``write_eof``
    twice over) and generic checks (text or payload bodies, cookies, compression,
    chunking) that a JSON answer never needs. Here ``prepare`` applies the same rules in
    one call, in the same order, so every header lands where aiohttp puts it
    (Content-Length, then Date, Server and Connection as aiohttp decides them, for HEAD,
    204/304, HTTP/1.0 and ``Connection: close`` alike), and the head is serialized and
    written by aiohttp's own writer (``write_headers``, ``write_eof``: its header checks,
    its single write of head and body, its flow control). A response given cookies,
    compression, chunking or a body that is not bytes takes aiohttp's own path.

    It reads and sets ``StreamResponse``'s private state as aiohttp's own methods do;
    ``tests/server/test_answer_head.py`` compares its bytes with ``web.Response``'s for
    every status, method, version and connection, and so pins that reliance.
    """

    _zlib_executor_size = MAX_SYNC_CHUNK_SIZE  # (what Response.__init__ would set)
    _zlib_executor = None

    def __init__(self, body: bytes, status: int = 200) -> None:
        # What StreamResponse.__init__ and Response.__init__ leave for this case.
        self._state = {}
        self._headers = _JSON_HEADERS.copy()
        self._set_status(status, None)
        self._body = body

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self._eof_sent:
            return None
        if self._payload_writer is not None:
            return self._payload_writer
        body = self._body
        if self._cookies or self._compression or self._chunked or not isinstance(body, bytes):
            return await super().prepare(request)
        method = request.method
        status = self._status
        empty = self._must_be_empty_body = must_be_empty_body(method, status)
        headers = self._headers
        # Response._start: the body's length.
        if hdrs.CONTENT_LENGTH in headers:
            if should_remove_content_length(method, status):
                del headers[hdrs.CONTENT_LENGTH]
        elif body or (status != 304 and method != hdrs.METH_HEAD):
            headers[hdrs.CONTENT_LENGTH] = str(len(body))
        # StreamResponse._start and _prepare_headers (neither chunked nor compressed).
        self._req = request
        writer = self._payload_writer = request._payload_writer
        keep_alive = self._keep_alive
        if keep_alive is None:
            keep_alive = request.keep_alive
        self._keep_alive = keep_alive
        version = request.version
        length = writer.length = (
            int(headers[hdrs.CONTENT_LENGTH]) if hdrs.CONTENT_LENGTH in headers else len(body)
        )
        if empty:
            if hdrs.CONTENT_LENGTH in headers and should_remove_content_length(method, status):
                del headers[hdrs.CONTENT_LENGTH]
            if hdrs.TRANSFER_ENCODING in headers:
                del headers[hdrs.TRANSFER_ENCODING]
        elif length != 0:
            headers.setdefault(hdrs.CONTENT_TYPE, "application/octet-stream")
        if hdrs.DATE not in headers:
            headers[hdrs.DATE] = rfc822_formatted_time()
        headers.setdefault(hdrs.SERVER, SERVER_SOFTWARE)
        if hdrs.CONNECTION not in headers:
            if keep_alive:
                if version == HttpVersion10:
                    headers[hdrs.CONNECTION] = "keep-alive"
            elif version == HttpVersion11:
                headers[hdrs.CONNECTION] = "close"
        await request._prepare_hook(self)  # the app's on_response_prepare
        status_line = f"HTTP/{version[0]}.{version[1]} {status} {self._reason}"
        await writer.write_headers(status_line, headers)
        return writer

    async def write_eof(self, data: bytes = b"") -> None:
        writer = self._payload_writer
        body = self._body
        if (
            self._eof_sent
            or writer is None
            or data
            or self._compressed_body is not None
            or not isinstance(body, bytes)
        ):
            await super().write_eof(data)
            return
        await writer.write_eof(b"" if self._must_be_empty_body else body)
        self._eof_sent = True
        self._req = None
        self._body_length = writer.output_size
        self._payload_writer = None


def _scrub(data: Any) -> Any:
    if isinstance(data, str):
        return data if is_text(data) else data.encode("utf-8", "replace").decode("utf-8")
    if isinstance(data, dict):
        return {_scrub(k): _scrub(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_scrub(v) for v in data]
    return data


def is_text(value: str) -> bool:
    """False when ``value`` holds lone surrogates: aiohttp decodes header bytes that are
    not UTF-8 as such (``surrogateescape``), and they cannot be stored or sent as JSON."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def header_text(request: web.Request, name: str, invalid: ErrorSpec) -> str | None:
    """A header's value, or None when absent; ``invalid`` (a ProviderError) when its
    bytes are not UTF-8. Every header whose value is used must be read through this."""
    value = request.headers.get(name)
    if value is not None and not is_text(value):
        raise ProviderError(invalid, f"The {name} header is not valid UTF-8")
    return value


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
    request[BODY] = data
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
    else:
        raw = await request.read()
    request[RAW_BODY] = raw
    return raw


N = TypeVar("N", int, float)


def check_charset(request: web.Request) -> None:
    """400 when the body's ``Content-Type`` names a charset Python does not know."""
    raw = request.headers.get("Content-Type")
    if raw is None or ";" not in raw:
        return  # no parameters, so no charset: not worth parsing (most requests)
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

    An unknown charset, of the body or of a multipart part, is a 400 ``invalid_body``."""
    check_charset(request)
    try:
        return await request.post()
    except ValueError:  # e.g. a multipart body without its boundary
        return None
    except LookupError as exc:  # a multipart part's charset Python does not know
        raise ProviderError(E.BODY_INVALID, unknown_charset(exc)) from None


def unknown_charset(exc: LookupError) -> str:
    """The message for a form whose body or part names a charset Python does not know."""
    return f"The form names a charset Python does not know ({exc}): send UTF-8"


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
    """The (id, secret) of an ``Authorization: Basic`` header, or (None, None).

    Credentials that are not UTF-8 (in the header or once decoded) are 401
    ``invalid_client``.
    """
    header = header_text(request, "Authorization", E.OAUTH_INVALID_CLIENT) or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None, None
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except ValueError:  # binascii.Error, or a header that is not ASCII
        return None, None
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProviderError(
            E.OAUTH_INVALID_CLIENT, "Invalid client: the Basic credentials are not valid UTF-8"
        ) from None
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


def bearer_token(request: web.Request, invalid: ErrorSpec = E.OAUTH_INVALID_CLIENT) -> str | None:
    """The token of an ``Authorization: Bearer`` header; ``invalid`` if not UTF-8."""
    header = header_text(request, "Authorization", invalid) or ""
    scheme, _, value = header.partition(" ")
    return value if scheme.lower() == "bearer" else None
