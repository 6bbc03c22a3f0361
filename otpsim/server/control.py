"""The control API under ``/_sim/``: inspect, wait, move the clock, reset.

For tests, QA and the inbox page; it never needs provider credentials. Errors use the
provider's error shape too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from otpsim import __version__
from otpsim.clock import parse_iso
from otpsim.domain.numbers import normalize_phone
from otpsim.domain.otp import Status
from otpsim.engine import MAX_CREDENTIAL, too_long
from otpsim.errors import E, OtpsimError, ProviderError
from otpsim.server.callbacks import State
from otpsim.server.http import json_response, query_number, read_json_object
from otpsim.server.keys import DISPATCHER, SIM, STOPPING, STREAMS

if TYPE_CHECKING:
    from otpsim.scenario.model import Scenario

T = TypeVar("T")

MAX_LIST = 10_000


def _phone_filter(request: web.Request) -> str | None:
    raw = request.query.get("phoneNumber")
    if raw is None or raw == "":
        return None
    phone = normalize_phone(raw)
    if phone == "+":
        raise ProviderError(E.SIM_INVALID_PARAM, "'phoneNumber' must be a phone number")
    return phone


def _account_filter(request: web.Request) -> str | None:
    """``?account=``: only what that credential (API key or OAuth client id) created."""
    account = request.query.get("account") or None
    if account is not None and len(account) > MAX_CREDENTIAL:
        raise ProviderError(E.SIM_INVALID_PARAM, too_long("'account'"))
    return account


def _otp_filter(request: web.Request) -> str | None:
    return (request.query.get("otpId") or "").lower() or None


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok", "version": __version__})


async def list_messages(request: web.Request) -> web.Response:
    messages = request.app[SIM].messages(
        account=_account_filter(request),
        phone_number=_phone_filter(request),
        otp_id=_otp_filter(request),
        limit=query_number(request, "limit", int, default=100, low=1, high=MAX_LIST),
    )
    return json_response({"messages": [m.to_json() for m in messages]})


async def long_poll(request: web.Request, waiting: Awaitable[T | None]) -> tuple[T | None, bool]:
    """Hold this request until ``waiting`` gives its answer (None: nothing within its
    wait); returns it and whether the wait was pre-empted. A long poll holds its
    connection in one of the --max-streams slots; at the cap the oldest long poll is
    pre-empted: it ends now, "nothing yet". The server starting to stop ends every long
    poll too (503, at once)."""
    with request.app[STREAMS].slot("long poll") as stream:
        task = asyncio.ensure_future(waiting)
        ended = asyncio.ensure_future(stream.ended.wait())
        stopping = asyncio.ensure_future(request.app[STOPPING].wait())
        try:
            await asyncio.wait({task, ended, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            stopping.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        found = task.result() if not task.cancelled() else None
        if found is None and request.app[STOPPING].is_set():
            raise ProviderError(
                E.SERVICE_UNAVAILABLE,
                "The simulator is shutting down: try again when it is back",
            )
        return found, stream.ended.is_set() and found is None


def nothing_yet(what: str, wait: float, preempted: bool) -> ProviderError:
    """The 404 of a latest-... read that found nothing (``what``: e.g. "No message
    delivered for phoneNumber +33..."), saying how long it waited, or that its wait was
    pre-empted (then with ``Retry-After: 0``)."""
    waited = f" within {wait:g}s" if wait else ""
    if preempted:
        waited = " yet (this wait ended early to make room for another: poll again)"
    error = ProviderError(E.SIM_NOT_FOUND, f"{what}{waited}")
    if preempted:
        error.headers["Retry-After"] = "0"
    return error


async def latest_message(request: web.Request) -> web.Response:
    """The newest delivered SMS; ``wait=S`` holds the request until one arrives."""
    sim = request.app[SIM]
    phone, otp_id = _phone_filter(request), _otp_filter(request)
    wait = query_number(request, "wait", float, default=0.0, low=0.0, high=sim.settings.max_wait)
    account = _account_filter(request)
    preempted = False
    if wait > 0:
        message, preempted = await long_poll(
            request,
            sim.wait_latest_message(phone_number=phone, otp_id=otp_id, wait=wait, account=account),
        )
    else:
        message = sim.latest_message(phone_number=phone, otp_id=otp_id, account=account)
    if message is None:
        about = " and ".join(
            part
            for part in (phone and f"phoneNumber {phone}", otp_id and f"otpId {otp_id}")
            if part
        )
        raise nothing_yet(
            f"No message delivered{' for ' + about if about else ''}", wait, preempted
        )
    return json_response(message.to_json())


async def clear_messages(request: web.Request) -> web.Response:
    request.app[SIM].clear_messages(_account_filter(request))
    return json_response({"status": "ok"})


async def list_otps(request: web.Request) -> web.Response:
    status = request.query.get("status") or None
    if status is not None and status.upper() not in Status.__members__:
        raise ProviderError(
            E.SIM_INVALID_PARAM, f"'status' must be one of: {', '.join(Status.__members__)}"
        )
    otps = request.app[SIM].list_otps(
        account=_account_filter(request),
        phone_number=_phone_filter(request),
        status=None if status is None else Status(status.upper()),
        limit=query_number(request, "limit", int, default=100, low=1, high=MAX_LIST),
    )
    return json_response({"otps": [o.to_sim() for o in otps]})


async def get_otp(request: web.Request) -> web.Response:
    otp = request.app[SIM].get_otp(request.match_info["otp_id"])
    return json_response(otp.to_sim())


async def get_clock(request: web.Request) -> web.Response:
    """The shared clock; ``?account=K``: K's (``own``: whether it has one of its own)."""
    return json_response(request.app[SIM].clock_json(_account_filter(request)))


CLOCK_MIN, CLOCK_MAX = 0.0, 253402300799.0  # 1970-01-01 .. 9999-12-31T23:59:59Z


def _clock_changes(
    body: dict[str, Any], now: float
) -> tuple[float | None, float | None, bool | None]:
    """Validate a clock request completely before anything moves."""
    unknown = sorted(set(body) - {"advance", "set", "freeze"})
    if unknown or not body:
        raise ProviderError(
            E.SIM_INVALID_PARAM,
            "Expected a JSON object with 'advance' (seconds), 'set' (ISO time) and/or "
            f"'freeze' (true/false){'; unknown: ' + ', '.join(unknown) if unknown else ''}",
        )
    advance = body.get("advance")
    if advance is not None and (
        isinstance(advance, bool)
        or not isinstance(advance, int | float)
        or not math.isfinite(advance)
    ):
        raise ProviderError(E.SIM_INVALID_PARAM, "'advance' must be a number of seconds")
    when = body.get("set")
    at: float | None = None
    if when is not None:
        if not isinstance(when, str):
            raise ProviderError(E.SIM_INVALID_PARAM, "'set' must be an ISO 8601 time")
        try:
            at = parse_iso(when)
        except ValueError as exc:
            raise ProviderError(E.SIM_INVALID_PARAM, f"'set': {exc}") from None
    freeze = body.get("freeze")
    if freeze is not None and not isinstance(freeze, bool):
        raise ProviderError(E.SIM_INVALID_PARAM, "'freeze' must be true or false")
    target = (at if at is not None else now) + (float(advance) if advance is not None else 0.0)
    if not CLOCK_MIN <= target <= CLOCK_MAX:
        raise ProviderError(
            E.SIM_INVALID_PARAM, "The clock must stay between 1970-01-01 and 9999-12-31 (UTC)"
        )
    return (None if advance is None else float(advance)), at, freeze


async def move_clock(request: web.Request) -> web.Response:
    """``{"set": iso}``, then ``{"advance": s}``, then ``{"freeze": bool}``, as given.

    ``?account=K``: K's own clock only (its OTPs, SMS, tokens and callbacks run on it);
    without, the shared clock and every account's with it."""
    sim = request.app[SIM]
    account = _account_filter(request)
    advance, at, freeze = _clock_changes(await read_json_object(request), sim.now(account))
    sim.move_clock(to=at, advance=advance, freeze=freeze, account=account)
    await sim.wait_jump()  # what the jump made due has run (callback attempts: bounded)
    return json_response(sim.clock_json(account))


async def list_callbacks(request: web.Request) -> web.Response:
    """Every callback delivery, newest first, with every attempt; the batches open when
    asked (of that account, of that OTP) are waited for first, about one batch window
    at most, so that what happened so far is listed."""
    state = request.query.get("status") or None
    if state is not None and state.lower() not in {s.value for s in State}:
        raise ProviderError(
            E.SIM_INVALID_PARAM, f"'status' must be one of: {', '.join(s.value for s in State)}"
        )
    account, otp_id = _account_filter(request), _otp_filter(request)
    limit = query_number(request, "limit", int, default=100, low=1, high=MAX_LIST)
    await request.app[DISPATCHER].settle(account=account, otp_id=otp_id)
    deliveries = request.app[DISPATCHER].deliveries(
        account=account,
        otp_id=otp_id,
        state=None if state is None else state.lower(),
        limit=limit,
    )
    return json_response({"callbacks": [d.to_json() for d in deliveries]})


def _delivery_id(request: web.Request) -> str:
    return request.match_info["delivery_id"]


async def get_callback(request: web.Request) -> web.Response:
    """One delivery; if its batch is still open, once it has closed (a window at most)."""
    await request.app[DISPATCHER].settle(delivery_id=_delivery_id(request))
    delivery = request.app[DISPATCHER].get(_delivery_id(request))
    if delivery is None:
        raise ProviderError(E.SIM_NOT_FOUND, f"No callback delivery {_delivery_id(request)}")
    return json_response(delivery.to_json())


async def resend_callback(request: web.Request) -> web.Response:
    delivery = request.app[DISPATCHER].resend(_delivery_id(request))
    if delivery is None:
        raise ProviderError(E.SIM_NOT_FOUND, f"No callback delivery {_delivery_id(request)}")
    return json_response(delivery.to_json(), status=202)


async def get_scenario(request: web.Request) -> web.Response:
    """The global scenario; ``?account=K``: the one in force for K (``own``: its own)."""
    return json_response(request.app[SIM].scenario_json(_account_filter(request)))


async def put_scenario(request: web.Request) -> web.Response:
    """Activate a scenario's network rules: a YAML or JSON body, checked completely first.

    A rejected scenario changes nothing: the previous one stays active. It is checked
    in a worker thread: a large (or hostile) body does not hold up other clients.
    ``?account=K``: for K's requests only (it replaces the global one for K, wholly).
    """
    account = _account_filter(request)
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProviderError(E.SCENARIO_INVALID, "The scenario is not UTF-8 text") from None
    try:
        scenario = await asyncio.to_thread(_parse_scenario, text)
    except OtpsimError as exc:
        raise ProviderError(E.SCENARIO_INVALID, str(exc)) from None
    if scenario.network is None:
        raise ProviderError(E.SCENARIO_INVALID, "The scenario has no 'network' to activate")
    sim = request.app[SIM]
    sim.use_scenario(scenario.network, name=scenario.name, account=account)
    return json_response(sim.scenario_json(account))


def _parse_scenario(text: str) -> Scenario:
    """In the worker thread: the scenario machinery (yaml, jinja2) is loaded on the first
    activation, not at start-up, and its loading does not hold up the event loop."""
    from otpsim.scenario.model import parse_scenario

    return parse_scenario(text, "<request body>")


async def delete_scenario(request: web.Request) -> web.Response:
    """Back to the configured network; ``?account=K``: K back to the global scenario."""
    sim = request.app[SIM]
    account = _account_filter(request)
    sim.use_scenario(None, account=account)
    return json_response(sim.scenario_json(account))


@functools.lru_cache(maxsize=1)
def _openapi_source() -> str:
    from importlib.resources import files

    import yaml  # not needed before the document is first asked for

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser when built
    return json.dumps(yaml.load((files("otpsim") / "openapi.yaml").read_text("utf-8"), loader))


def openapi_document(max_wait: float) -> dict[str, Any]:
    """The OpenAPI document (otpsim/openapi.yaml), with this server's own limits.

    Parsed once per process, when first asked for (not at every start-up).
    """
    doc: dict[str, Any] = json.loads(_openapi_source())
    doc["info"]["version"] = __version__
    for path in ("/_sim/messages/latest", "/_sim/requests/latest"):
        latest = doc["paths"][path]["get"]["parameters"]
        wait = next(p for p in latest if p.get("name") == "wait")
        wait["schema"]["maximum"] = max_wait
    return doc


async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document(request.app[SIM].settings.max_wait))


def _account_name(request: web.Request) -> str:
    """The ``{account}`` of a control path: a credential, so at most MAX_CREDENTIAL long."""
    account = request.match_info["account"]
    if len(account) > MAX_CREDENTIAL:
        raise ProviderError(E.SIM_INVALID_PARAM, too_long("The account name"))
    return account


async def get_balance(request: web.Request) -> web.Response:
    """``GET /_sim/accounts/{account}/balance``: as ``GET /account/balance`` shows it."""
    return json_response(request.app[SIM].balance(_account_name(request)))


async def put_balance(request: web.Request) -> web.Response:
    """``PUT /_sim/accounts/{account}/balance`` ``{"balance": 0.5}`` (``null``: unlimited)."""
    body = await read_json_object(request)
    amount = body.get("balance", ...)
    if amount is ... or not (
        amount is None
        or (
            isinstance(amount, int | float)
            and not isinstance(amount, bool)
            and math.isfinite(amount)
            and 0 <= amount <= 1e12
        )
    ):
        raise ProviderError(
            E.SIM_INVALID_PARAM,
            "'balance' must be a number from 0 to 1e12, or null for unlimited",
        )
    account = _account_name(request)
    amount = None if amount is None else float(amount)
    return json_response(request.app[SIM].set_balance(account, amount))


async def reset(request: web.Request) -> web.Response:
    request.app[SIM].reset(_account_filter(request))
    return json_response({"status": "ok"})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/_sim/health", health, name="sim.health")
    r.add_get("/_sim/messages", list_messages, name="sim.messages")
    r.add_delete("/_sim/messages", clear_messages, name="sim.messages.clear")
    r.add_get("/_sim/messages/latest", latest_message, name="sim.messages.latest")
    r.add_get("/_sim/otps", list_otps, name="sim.otps")
    r.add_get("/_sim/otps/{otp_id}", get_otp, name="sim.otp")
    r.add_get("/_sim/clock", get_clock, name="sim.clock")
    r.add_post("/_sim/clock", move_clock, name="sim.clock.move")
    r.add_get("/_sim/callbacks", list_callbacks, name="sim.callbacks")
    r.add_get("/_sim/callbacks/{delivery_id}", get_callback, name="sim.callback")
    r.add_post("/_sim/callbacks/{delivery_id}/resend", resend_callback, name="sim.callback.resend")
    r.add_get("/_sim/scenario", get_scenario, name="sim.scenario")
    r.add_put("/_sim/scenario", put_scenario, name="sim.scenario.put")
    r.add_delete("/_sim/scenario", delete_scenario, name="sim.scenario.delete")
    r.add_get("/_sim/accounts/{account}/balance", get_balance, name="sim.balance")
    r.add_put("/_sim/accounts/{account}/balance", put_balance, name="sim.balance.put")
    r.add_post("/_sim/reset", reset, name="sim.reset")
    r.add_get("/_sim/openapi.json", openapi, name="sim.openapi")
