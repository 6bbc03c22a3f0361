"""The request journal's front end: which requests are journaled, the entry the
middleware builds for each, and ``/_sim/requests`` (list, long-poll, clear).

The middleware (``app.serve``) calls :func:`begin` as a provider-API request
arrives and :func:`record` once its answer is known, whatever it is (a 201, a 401 before
any handler ran, a 404 on an unknown path, a 503 from a scenario rule). The entry is
built from what the request already holds: the body as its handler read it (``BODY``,
``RAW_BODY``: never parsed again), the OTP its handler found (``CONCERNS``), the
principal admitted, and the labels of the scenario rules that fired (``FIRED``).

Example::

    GET /_sim/requests?path=/otp*&status=5xx       {"requests": [entry, ...]}
    GET /_sim/requests/latest?otpId=...&wait=5     entry (404 if none in time)
    DELETE /_sim/requests?account=key              {"status": "ok"}
"""

from __future__ import annotations

import contextlib
import logging
import time
from contextvars import Token
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from otpsim import jsoncodec
from otpsim.clock import parse_iso
from otpsim.domain.journal import (
    MASK,
    MAX_BODY_TEXT,
    TOKEN_FIELDS,
    TOKEN_PATH,
    RequestQuery,
    RequestRecord,
    is_secret_key,
    mask_text,
    parse_request_id,
    parse_status,
)
from otpsim.domain.numbers import normalize_phone
from otpsim.engine import Simulator
from otpsim.engine.network import FIRED
from otpsim.errors import E, ProviderError
from otpsim.server.control import (
    MAX_LIST,
    _account_filter,
    _otp_filter,
    _phone_filter,
    long_poll,
    nothing_yet,
)
from otpsim.server.http import (
    BODY,
    RAW_BODY,
    is_text,
    json_response,
    query_number,
    request_state,
)
from otpsim.server.keys import CLIENT_ID, CONCERNS, PRINCIPAL, SIM
from otpsim.server.security import is_page_asset

log = logging.getLogger("otpsim")

# When a journaled request arrived (simulator time) and the token resetting its FIRED
# list: what :func:`begin` gives the middleware, which hands it back to :func:`record`.
Started = tuple[float, Token[list[str] | None]]


def journaled(path: str) -> bool:
    """The provider API: anything but the control API, the inbox page and its assets."""
    return not (path.startswith("/_sim/") or path == "/_sim" or path == "/") and not (
        is_page_asset(path)
    )


def begin(sim: Simulator) -> Started:
    """A provider-API request arrived: its time, and a fresh list of rules fired."""
    return sim.now(), FIRED.set([])


def _text(value: str) -> str:
    """``value`` fit for JSON (lone surrogates, from bytes that were not UTF-8, replaced)."""
    return value if is_text(value) else value.encode("utf-8", "replace").decode("utf-8")


def _token_body(form: dict[str, Any]) -> dict[str, Any]:
    """A token request's fields as kept: the harmless ones as sent, any other masked."""
    return {k: (v if k in TOKEN_FIELDS and isinstance(v, str) else MASK) for k, v in form.items()}


def _kept(text: str, is_json: bool, path: str) -> tuple[str, bool]:
    """What is kept of a body's text: a client secret never, whatever its format. A token
    request keeps its harmless fields only (a body that is not a form or a JSON object, not
    at all); any other body, the value of no key named like a secret (``client_secret``)."""
    if path == TOKEN_PATH:
        form: Any = None
        if is_json:
            with contextlib.suppress(ValueError):
                form = jsoncodec.loads(text)
        if not isinstance(form, dict):
            return f"{MASK} (a token request body that is not a form: not kept)", False
        text = jsoncodec.dumps_text(_token_body(form))
        if len(text) > MAX_BODY_TEXT:
            return text[:MAX_BODY_TEXT], False
    lowered = text.lower()
    if "secret" in lowered or "password" in lowered or "\\" in text or "%" in text:
        text = mask_text(text, is_secret_key)
    return text, is_json


def _form_text(form: dict[str, Any]) -> tuple[str, bool]:
    """A form (its fields as text) as kept: JSON of its fields, or a prefix if too long."""
    text = jsoncodec.dumps_text({k: v for k, v in form.items() if isinstance(v, str)})
    return (text, True) if len(text) <= MAX_BODY_TEXT else (text[:MAX_BODY_TEXT], False)


def _body(request: web.Request, state: dict[Any, Any]) -> tuple[str | None, bool]:
    """What the journal keeps of the body: its text (at most MAX_BODY_TEXT characters;
    parsed again only when an entry is shown), and whether it is a whole JSON object. Never
    a parsed object: a few KiB of JSON can parse into a hundred KiB of Python objects."""
    raw = state.get(RAW_BODY)
    parsed = state.get(BODY)
    text: str | None = None
    is_json = False
    if parsed and raw is None:  # a form (POST /oauth/token)
        text, is_json = _form_text(parsed)
    elif parsed is not None and raw is not None and len(raw) <= MAX_BODY_TEXT:
        text, is_json = raw.decode("utf-8", "replace"), True  # (JSON: UTF-8 already)
    else:
        if raw is None and request.body_exists and request.content.is_eof():
            # Never read (refused before its handler): what already arrived, never awaited
            # (nothing, when the client is gone: a fault's hang it gave up on).
            try:
                raw = request.content.read_nowait(MAX_BODY_TEXT + 1)
            except (ConnectionError, RuntimeError):
                raw = None
            # Not parsed here (its objects would outlive it as fragmented memory): one
            # that looks like a JSON object is parsed when shown, or shown as text.
            is_json = (
                raw is not None and len(raw) <= MAX_BODY_TEXT and raw.lstrip().startswith(b"{")
            )
        if not raw:
            return None, False
        text = raw[:MAX_BODY_TEXT].decode("utf-8", "replace")
        if not is_json and request.content_type == "application/x-www-form-urlencoded":
            # A form never read (a token request refused first): as its handler shows it.
            text, is_json = _form_text(dict(parse_qsl(text, keep_blank_values=True)))
    return _kept(text, is_json, request.path)


def _error(response: web.StreamResponse) -> dict[str, Any] | None:
    """The error of an error answer (the provider's shape): type, code, message."""
    if response.status < 400 or not isinstance(response, web.Response):
        return None
    raw = response.body
    if not isinstance(raw, bytes):
        return None
    try:
        error = jsoncodec.loads(raw).get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict):
        return None
    return {"type": error.get("type"), "code": error.get("code"), "message": error.get("message")}


def record(
    sim: Simulator,
    request: web.Request,
    response: web.StreamResponse,
    started: float,
    begun: Started,
    request_id: str,
) -> None:
    """Journal a provider-API request whose answer is known (``begun``: what
    :func:`begin` returned as it arrived). Never fails the answer."""
    at, token = begun
    rules = FIRED.get() or []
    FIRED.reset(token)
    try:
        state = request_state(request)
        principal = state.get(PRINCIPAL)
        account = principal.account if principal is not None else state.get(CLIENT_ID)
        otp = state.get(CONCERNS)
        otp_id = otp.otp_id if otp is not None else None
        phone = otp.request.phone_number if otp is not None else None
        status = response.status
        if otp_id is None:
            given = request.match_info.get("otp_id")
            if given is not None:
                otp_id = _text(given.lower())
                if request.path.startswith("/otp/"):
                    phone = sim.otp_phone(otp_id)
        if phone is None:
            parsed = state.get(BODY)
            number = parsed.get("phoneNumber") if parsed is not None else None
            if isinstance(number, str):
                # As the phoneNumber filter reads it (the number as sent: "+33 6 12...").
                phone = normalize_phone(number[:64])
                phone = None if phone == "+" else phone
        error = _error(response) if status >= 400 else None
        if error is not None and isinstance(error.get("message"), str):
            error["message"] = _text(error["message"])
        path = request.path
        body, body_json = _body(request, state)
        # Positionally (a dataclass's keywords cost a lookup each), in its field order:
        # seq (numbered by the simulator), at, method, path, status, request_id, account,
        # otp_id, phone_number, body, error, latency_ms, rules, body_json.
        sim.log_request(
            RequestRecord(
                0, at, request.method, path if path.isascii() else _text(path), status,
                request_id, account, otp_id, phone, body, error,
                round((time.perf_counter() - started) * 1000, 3), rules, body_json,
            )
        )  # fmt: skip
    except Exception:  # the journal must never cost a client its answer
        log.exception("could not journal %s %s", request.method, request.path)


# -- /_sim/requests ----------------------------------------------------------------------


def _query(request: web.Request) -> RequestQuery:
    """The filters of ``/_sim/requests``: 400 ``invalid_param`` naming a bad one."""
    q = request.query
    status = None
    if q.get("status"):
        status = parse_status(q["status"])
        if status is None:
            raise ProviderError(
                E.SIM_INVALID_PARAM, "'status' must be a status (e.g. 503) or a class (e.g. 4xx)"
            )
    path = q.get("path") or None
    if path is not None and not path.startswith("/"):
        raise ProviderError(
            E.SIM_INVALID_PARAM, "'path' must start with '/' (a prefix ends with '*')"
        )
    after_seq, since_time = None, None
    since = q.get("since") or None
    if since is not None:
        after_seq = parse_request_id(since)
        if after_seq is None:
            try:
                since_time = parse_iso(since)
            except ValueError:
                raise ProviderError(
                    E.SIM_INVALID_PARAM,
                    "'since' must be a request id (r-000123) or an ISO 8601 time",
                ) from None
    method = q.get("method") or None
    return RequestQuery(
        account=_account_filter(request),
        phone_number=_phone_filter(request),
        otp_id=_otp_filter(request),
        status=status,
        path=path,
        method=method.upper() if method else None,
        after_seq=after_seq,
        since_time=since_time,
    )


def _pins(request: web.Request) -> bool:
    """``?pins=show``: PINs in bodies as sent (masked otherwise)."""
    pins = request.query.get("pins")
    if pins not in (None, "", "show", "mask"):
        raise ProviderError(E.SIM_INVALID_PARAM, "'pins' must be 'show' or 'mask'")
    return pins == "show"


async def list_requests(request: web.Request) -> web.Response:
    query, pins = _query(request), _pins(request)
    limit = query_number(request, "limit", int, default=100, low=1, high=MAX_LIST)
    found = request.app[SIM].requests(query, limit)
    return json_response({"requests": [r.to_json(pins=pins) for r in found]})


async def latest_request(request: web.Request) -> web.Response:
    """The newest entry matching the filters; ``wait=S`` holds the request until one is
    journaled (as ``/_sim/messages/latest`` does, in a ``--max-streams`` slot)."""
    sim = request.app[SIM]
    query, pins = _query(request), _pins(request)
    wait = query_number(request, "wait", float, default=0.0, low=0.0, high=sim.settings.max_wait)
    preempted = False
    if wait > 0:
        found, preempted = await long_poll(request, sim.wait_request(query, wait))
    else:
        matches = sim.requests(query, 1)
        found = matches[0] if matches else None
    if found is None:
        raise nothing_yet("No request journaled", wait, preempted)
    return json_response(found.to_json(pins=pins))


async def clear_requests(request: web.Request) -> web.Response:
    request.app[SIM].clear_requests(_account_filter(request))
    return json_response({"status": "ok"})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/_sim/requests", list_requests, name="sim.requests")
    r.add_delete("/_sim/requests", clear_requests, name="sim.requests.clear")
    r.add_get("/_sim/requests/latest", latest_request, name="sim.requests.latest")
