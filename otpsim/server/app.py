"""The aiohttp application: routes, middlewares, and typed app state.

Example::

    app = create_app(Settings(), clock=Clock(frozen=True))
    web.run_app(app, host="127.0.0.1", port=0)
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import HttpVersion11, web
from aiohttp.typedefs import Handler

from otpsim import __version__
from otpsim.clock import Clock
from otpsim.config import Settings
from otpsim.domain.message import Message
from otpsim.engine import Caller, Simulator
from otpsim.errors import E, ProviderError
from otpsim.events import Event
from otpsim.logs import log_line, mask_pin, text_line
from otpsim.server import control, inbox, journal, provider, routing, security
from otpsim.server.callbacks import INSTANCE_HEADER, CallbackDispatcher
from otpsim.server.edge import Streams
from otpsim.server.faults import latency_pause
from otpsim.server.http import (
    basic_credentials,
    bearer_token,
    error_response,
    header_text,
    http_error_spec,
    is_text,
    request_state,
)
from otpsim.server.keys import (
    DISPATCHER,
    EXTRA_HEADERS,
    HUB,
    METRICS,
    PRINCIPAL,
    REQUEST_ID,
    SIM,
    STOPPING,
    STREAMS,
)
from otpsim.server.live import LiveHub
from otpsim.server.metrics import Metrics, metrics
from otpsim.store import Store
from otpsim.store.retention import Retention

log = logging.getLogger("otpsim")
access_log = logging.getLogger("otpsim.access")
sms_log = logging.getLogger("otpsim.sms")


def log_sms(settings: Settings) -> Callable[[Event], None]:
    """A bus listener: one log line per SMS sent, the PIN masked unless --log-pins.

    Read from the event's subject, the :class:`Message` itself (the simulator publishes
    ``message.created`` with it): the line needs a few of its fields, not the whole JSON
    (fifteen keys, ISO times) that no other listener reads at defaults."""

    def listener(event: Event) -> None:  # message.created
        if not sms_log.isEnabledFor(logging.INFO):
            return
        sms = event.subject
        assert isinstance(sms, Message)  # the simulator's message.created always has it
        text = mask_pin(sms.text, sms.pin, settings.log_pins)
        line = f"SMS to {sms.phone_number} from {sms.sender}: {text}"
        if text_line(sms_log, logging.INFO, line):
            return  # the text format wants no fields: none built
        log_line(
            sms_log, logging.INFO, line,
            {
                "message_id": sms.message_id, "otp_id": sms.otp_id, "account": sms.account,
                "phone": sms.phone_number, "text": text, "parts": sms.parts,
                "encoding": sms.encoding,
            },
        )  # fmt: skip

    return listener


async def serve(
    app: web.Application, route: str | None, handler: Handler, request: web.Request
) -> web.StreamResponse:
    """The one middleware, every route's handler (``routing.through``), in this order for
    every request:

    1. a request id and a start time (``X-Request-Id``, ``X-Response-Time``);
    2. the control API's guard (cross-site refusal, admin token), see ``security``;
    3. for provider API routes (named ``api.*``): who is calling, and their rate budget;
    4. the handler, and every error raised anywhere answered in the provider's shape;
    5. for anything but GET: what the request changed is on disk before the answer;
    6. headers, metrics and an access-log line (info: errors only; debug: every request);
       provider-API requests (every one, refused or not) go to the request journal
       (``journal``).

    One function rather than a stack: each aiohttp middleware layer costs a coroutine
    per request, and the steps are easier to follow in one place. Not registered as an
    aiohttp middleware either (that adds aiohttp's chain lookup and a layer of its own per
    request): each route's handler is ``partial(serve, app, route_name, handler)``
    (``routing.through``; the app and the route's name bound once, not read through
    ``request.match_info`` each time), and requests no route takes (404, 405) reach it
    through the router's ``resolve``.
    """
    started = time.perf_counter()
    request[REQUEST_ID] = request_id = new_request_id()
    sim = app[SIM]
    begun = journal.begin(sim) if journal.journaled(request.path) else None
    try:
        try:
            _check_expect(request)
            refusal = _own_callback(request, app)
            if refusal is None:
                if begun is not None:  # the provider API (journaled): its guard only
                    security.guard_api(request, sim.settings)
                else:
                    refusal = security.guard(request)
            length = request.content_length
            if length is not None and length > request.client_max_size:
                # Refused before reading: a client announcing a gigabyte is not waited for.
                raise web.HTTPRequestEntityTooLarge(
                    max_size=request.client_max_size, actual_size=length
                )
            if refusal is not None:
                response: web.StreamResponse = refusal
            else:
                if route is not None and route.startswith("api."):
                    _admit(request, route, sim)
                response = await handler(request)
        except ProviderError as exc:
            response = error_response(exc)
        except web.HTTPException as exc:
            response = _http_error(request, exc)  # redirects and the like are re-raised
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except RecursionError:  # input nested beyond what a parser can follow
            response = error_response(
                ProviderError(E.BODY_INVALID, "Request body is nested too deeply")
            )
        except Exception:
            log.exception("unexpected error on %s %s", request.method, request.path)
            response = error_response(ProviderError(E.SERVER_ERROR))
    except web.HTTPException as exc:
        _finish(app, request, exc, started, request_id, route)
        if begun is not None:
            journal.record(sim, request, exc, started, begun, request_id)
        raise
    if request.method not in ("GET", "HEAD"):
        # What this request changed is on disk before anyone hears about it (a 201, a
        # clock move, a counted wrong PIN): with SQLite, it waits for its batch.
        try:
            await sim.wait_durable()
        except Exception as exc:  # its batch failed and was rolled back (the store logs why)
            response = error_response(
                ProviderError(E.SERVER_ERROR, f"{E.SERVER_ERROR.message}: {exc}")
            )
    _finish(app, request, response, started, request_id, route)
    if begun is not None:
        journal.record(sim, request, response, started, begun, request_id)
    return response


def _check_expect(request: web.Request) -> None:
    """417 in the error shape for an ``Expect`` other than ``100-continue``: aiohttp's own
    expect handler would answer it in plain text before any middleware runs, so every
    route gets ``continue_or_defer`` (``use_expect_handler``) and the refusal is here."""
    expect = request.headers.get("Expect")
    if expect is not None and expect.strip().lower() != "100-continue":
        shown = expect[:100] if is_text(expect) else "(not UTF-8)"
        raise ProviderError(
            E.EXPECTATION_FAILED, f"Unknown Expect header {shown!r}: only 100-continue is known"
        )


async def continue_or_defer(request: web.Request) -> None:
    """The routes' expect handler: ``100 Continue`` as aiohttp's does; any other
    expectation is left to the middleware (``_check_expect``), which runs next."""
    expect = request.headers.get("Expect", "")
    if request.version == HttpVersion11 and expect.strip().lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the answer has not begun


def use_expect_handler(app: web.Application) -> None:
    """Give every route ``continue_or_defer`` (aiohttp keeps it per route; the
    ``expect_handler=`` argument of ``add_route`` sets the same attribute)."""
    for route in app.router.routes():
        route._expect_handler = continue_or_defer


def _own_callback(request: web.Request, app: web.Application) -> web.Response | None:
    """A callback this simulator sent to itself (by a name POST /otp could not tell
    apart): refused before any handler runs, marked so its sender stops retrying."""
    given = request.headers.get(INSTANCE_HEADER)
    if given is None:  # (most requests: the app's state not even looked at)
        return None
    instance = app[DISPATCHER].instance
    if given != instance:
        return None
    message = "Refused: a callback from this simulator to itself"
    response = error_response(ProviderError(E.SIM_FORBIDDEN, message))
    response.headers[INSTANCE_HEADER] = instance
    return response


def new_request_id() -> str:
    """32 hex digits. Not a secret (it is echoed in headers and logs): the fast PRNG."""
    return random.getrandbits(128).to_bytes(16).hex()  # as f"{...:032x}", cheaper


def _finish(
    app: web.Application,
    request: web.Request,
    response: web.StreamResponse,
    started: float,
    request_id: str,
    route: str | None,
) -> None:
    elapsed = time.perf_counter() - started
    state = request_state(request)
    if not response.prepared:
        headers = response.headers
        headers["X-Request-Id"] = request_id
        headers["X-Response-Time"] = f"{elapsed * 1000:.3f}ms"
        extra = state.get(EXTRA_HEADERS)
        if extra:
            for name, value in extra.items():
                headers.setdefault(name, value)  # an error's own headers win
    route = route or "unmatched"
    status = response.status
    app[METRICS].requests.observe(route, request.method, status, elapsed)
    # At info, a line for each request answered with an error; every request at debug.
    level = logging.INFO if status >= 400 else logging.DEBUG
    if access_log.isEnabledFor(level):
        line = f"{request.method} {request.path} {status} {elapsed * 1000:.1f}ms"
        if text_line(access_log, level, line):
            return
        principal = state.get(PRINCIPAL)
        log_line(
            access_log, level, line,
            {
                "request_id": request_id, "method": request.method,
                "path": request.path, "route": route, "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "account": principal.account if principal else None,
            },
        )  # fmt: skip


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    """An error aiohttp raised itself (no route, wrong method, body too large), in the
    provider's error shape; anything else (a redirect) is raised again."""
    spec = http_error_spec(exc.status)
    if spec is None:
        raise exc
    message = spec.message
    if exc.status == 404:
        message = f"No such endpoint: {request.method} {request.path}"
    elif exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        message = f"Method {request.method} is not allowed on {request.path} (allowed: {allowed})"
    elif exc.status == 413:
        limit = request.app[SIM].settings.max_body_bytes
        message = f"Request body is too large (limit {limit} bytes)"
    response = error_response(ProviderError(spec, message))
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


def _admit(request: web.Request, route: str, sim: Simulator) -> None:
    """For provider API routes: who is calling, and whether their rate budget allows it.

    The rate headers are kept for the answer, whatever it turns out to be.
    """
    caller = _caller(request, route)
    admission = sim.admit(caller, provider.ROUTE_SCOPES.get(route))
    request[EXTRA_HEADERS] = admission.headers
    if admission.error is not None:
        raise admission.error
    if admission.principal is not None:
        request[PRINCIPAL] = admission.principal


def _caller(request: web.Request, route: str) -> Caller:
    """Who the request says it is, as read from its headers (unreadable credentials
    are the caller's problem, answered after its rate is counted)."""
    if route == "api.oauth.token":
        try:
            client_id, secret = basic_credentials(request)
        except ProviderError as exc:  # credentials that are not UTF-8
            return Caller(request.remote, token_request=True, problem=exc)
        return Caller(request.remote, token_request=True, client_id=client_id, client_secret=secret)
    try:
        # Credentials become the account, stored and sent as JSON: text only.
        api_key = header_text(request, "X-API-KEY", E.AUTH_BAD_KEY)
        bearer = bearer_token(request, E.AUTH_BAD_TOKEN) if api_key is None else None
    except ProviderError as exc:
        return Caller(request.remote, problem=exc)
    return Caller(request.remote, api_key=api_key, bearer=bearer)


async def going_away(app: web.Application) -> None:
    """The first step of stopping (aiohttp's on_shutdown, before it waits for requests
    in flight): long polls answer now and websockets get a close frame (1001), so that a
    browser tab or ``otpsim tail`` attached does not hold the stop up."""
    app[STOPPING].set()
    await app[HUB].close()


async def background(app: web.Application) -> AsyncIterator[None]:
    """The app's background work: the engine's scheduler and the callback dispatcher.

    On shutdown the dispatcher gets its grace period to finish what is in flight.
    """
    sim, dispatcher, hub = app[SIM], app[DISPATCHER], app[HUB]
    await dispatcher.start()
    scheduler = asyncio.create_task(sim.run(), name="scheduler")
    hub.start()
    try:
        yield
    finally:
        await hub.close()
        scheduler.cancel()
        await asyncio.gather(scheduler, return_exceptions=True)
        await dispatcher.close()
        sim.close()


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    store: Store | None = None,
) -> web.Application:
    """The whole simulator as an aiohttp application.

    Time and randomness come in as arguments (a :class:`Clock`, a seeded Random) so
    tests never patch them.
    """
    settings = settings or Settings()
    app = web.Application(client_max_size=settings.max_body_bytes)
    if store is None and settings.db:
        from otpsim.store.sqlite import SqliteStore  # sqlite3: only with --db

        retention = Retention(settings.max_messages, settings.max_age, settings.max_requests)
        store = SqliteStore(settings.db, retention=retention, durability=settings.db_sync)
    sim = Simulator(settings, clock=clock, rng=rng, store=store)
    sim.recover()  # a restart with --db: the clock, SMS on their way, pending expiries
    app[SIM] = sim
    app[DISPATCHER] = CallbackDispatcher(
        settings, bus=sim.bus, timers=sim.timers, log=sim.delivery_log, new_id=sim.new_id
    )
    app[STREAMS] = Streams(settings.max_streams)
    app[STOPPING] = asyncio.Event()
    sim.set_pause(latency_pause(app))  # a rule's latency holds a --max-streams slot
    app[HUB] = LiveHub(sim.bus, sim.clock_json, streams=app[STREAMS])
    app[METRICS] = Metrics(sim.bus, sim.status_counts)
    sim.subscribe(log_sms(settings), "message.created")
    app.router.add_get("/_sim/ws", app[HUB].handle, name="sim.ws")
    app.router.add_get("/_sim/metrics", metrics, name="sim.metrics")
    app.cleanup_ctx.append(background)
    app.on_shutdown.append(going_away)
    provider.add_routes(app)
    control.add_routes(app)
    journal.add_routes(app)
    inbox.add_routes(app)
    security.add_routes(app)
    use_expect_handler(app)
    routing.through(app, serve)  # last: every route above, and what none takes
    return app


__all__ = ["__version__", "create_app"]
