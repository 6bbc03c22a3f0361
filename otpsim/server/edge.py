"""The HTTP edge of ``otpsim serve``: what a connection may hold, and for how long.

aiohttp's server has a keep-alive timeout but no header or body timeout and no cap on
connections, so slow clients (slowloris) could hold every file descriptor. Here:

* ``--max-connections``: at the cap, a new connection closes the connection that has
  been idle longest (waiting for headers that may never come) to make room; failing
  that, the one receiving a request body most slowly, if below ``MIN_DATA_RATE`` (it
  gets a 408). Only when every connection is busy with a request (its handler running,
  or its body arriving faster) is the new one refused, with a 503 in the provider's
  shape. One warning line says so (at most every ``NOTE_EVERY`` seconds).
* ``--header-timeout``: a request line and its headers must arrive within this time of
  the connection opening or of their first byte, or the connection gets a 408 and is
  closed (closed without a word if it never sent a byte).
* ``--body-timeout``: a body must arrive within this time of its headers; a reader
  waiting for it gets a 408 (``BodyTimeout``), whichever handler reads it.
* ``--keepalive-timeout``: aiohttp's own, for idle keep-alive connections.
* ``--max-streams``: long polls and websockets hold a request open for long; they have
  a cap of their own (``Streams``): at the cap the oldest long poll is answered early
  ("nothing yet", ``Retry-After: 0``) to make room; websockets have half of it.
* Requests aiohttp cannot parse (an over-long header line, garbage) are answered in the
  provider's error shape instead of aiohttp's plain text, and a peer that resets its
  connection mid-request is logged at debug level, not as an error.

This subclasses aiohttp's ``Server`` and ``RequestHandler`` and reads a few of the
handler's attributes (``_request_count``, ``_messages``, ``_request_in_progress``,
``_upgraded``); ``tests/hostile/test_hostile_edge.py`` pins that behaviour.

Example::

    runner = EdgeRunner(app, settings, handle_signals=False, access_log=None)
    await runner.setup()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_request import BaseRequest

from otpsim import jsoncodec
from otpsim.config import Settings
from otpsim.errors import E, ProviderError
from otpsim.server.http import error_response

log = logging.getLogger("otpsim.edge")

NOTE_EVERY = 10.0  # seconds between two "connection cap reached" lines
FD_RESERVE = 64  # descriptors kept for the listener, the database, callbacks, logs
# At the connection cap, a connection still receiving a request body at less than this
# many bytes a second (averaged since its headers, over at least RATE_GRACE seconds) may
# be closed to make room, the slowest first.
MIN_DATA_RATE = 16 * 1024
RATE_GRACE = 1.0


class BodyTimeout(ProviderError, TimeoutError):
    """Set on a request body that did not arrive in time: a 408 for whoever reads it
    (and a TimeoutError for aiohttp, which then closes the connection quietly)."""


def raw_error(error: ProviderError) -> bytes:
    """A whole HTTP/1.1 answer in the provider's error shape, for a connection that
    has no request object (yet) to answer through; it asks the client to close."""
    body = jsoncodec.dumps(error.body())
    status = error.spec.status
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def raise_fd_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_cap(settings: Settings, fd_limit: int) -> int:
    """``--max-connections``, lowered so that the cap is reached before the FD limit."""
    return max(1, min(settings.max_connections, fd_limit - FD_RESERVE))


class Stream:
    """One open long poll, websocket, or request held by a rule's hang or latency;
    ``ended`` is set when a newcomer pre-empts it."""

    __slots__ = ("ended", "kind")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.ended = asyncio.Event()


class Streams:
    """The cap on long polls and websockets open at once (``--max-streams``).

    At the cap a newcomer is not refused while a long poll can make room: the oldest
    long poll is pre-empted (its wait ends at once with its normal "nothing yet"
    answer, which a client re-polls). Websockets cannot be pre-empted, so they have a
    share of their own, ``websocket_cap`` (half the cap, at least one): beyond it a
    websocket is refused with 503, and long polls always keep the other half.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.websocket_cap = max(1, cap // 2)
        self._polls: dict[Stream, None] = {}  # insertion order: oldest first
        self._sockets: set[Stream] = set()
        self.preempted = 0

    @property
    def open(self) -> int:
        return len(self._polls) + len(self._sockets)

    def bound_by(self, connections: int) -> None:
        """Take at most half of ``connections`` (the connection cap, at least one), so
        that held streams (long polls, websockets, requests held by a rule's hang or
        latency) never leave the other requests without a connection."""
        self.cap = min(self.cap, max(1, connections // 2))
        self.websocket_cap = max(1, self.cap // 2)

    def _admit(self, what: str) -> Stream:
        websocket = what == "websocket"
        if websocket and len(self._sockets) >= self.websocket_cap:
            raise ProviderError(
                E.TOO_BUSY,
                f"Too many websockets open ({self.websocket_cap}, half of --max-streams "
                f"{self.cap}): websocket refused, try again shortly",
            )
        if self.open >= self.cap:
            if not self._polls:
                raise ProviderError(
                    E.TOO_BUSY,
                    f"Too many long polls and websockets open ({self.cap}, --max-streams): "
                    f"{what} refused, try again shortly",
                )
            oldest = next(iter(self._polls))
            del self._polls[oldest]
            oldest.ended.set()  # answered early, "nothing yet"
            self.preempted += 1
        stream = Stream(what)
        if websocket:
            self._sockets.add(stream)
        else:
            self._polls[stream] = None
        return stream

    @contextlib.contextmanager
    def slot(self, what: str) -> Iterator[Stream]:
        """Hold a stream (``what``: "long poll" or "websocket") while the block runs;
        503 if there is no room even after pre-empting the oldest long poll."""
        stream = self._admit(what)
        try:
            yield stream
        finally:
            self._polls.pop(stream, None)
            self._sockets.discard(stream)


STREAMS = web.AppKey("streams", Streams)


class EdgeServer(web.Server):
    """aiohttp's Server, making ``EdgeHandler`` connections and keeping the cap."""

    def __init__(
        self,
        handler: Any,
        *,
        settings: Settings,
        cap: int,
        request_factory: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, request_factory=request_factory, **kwargs)
        self.settings = settings
        self.cap = cap
        self.handler_kwargs = kwargs
        self.open: set[EdgeHandler] = set()
        self.closed_idle = 0
        self.closed_slow = 0
        self.refused = 0
        self._noted_at = float("-inf")

    def __call__(self) -> EdgeHandler:
        return EdgeHandler(self, loop=asyncio.get_event_loop(), **self.handler_kwargs)

    def admit(self, handler: EdgeHandler) -> bool:
        """Room for one more connection: close the longest-idle one if at the cap."""
        if len(self.open) < self.cap:
            self.open.add(handler)
            return True
        idle = [h for h in self.open if h.idle]
        if idle:
            victim = min(idle, key=lambda h: h.idle_since)
            self.open.discard(victim)
            victim.force_close()
            self.closed_idle += 1
            self.open.add(handler)
            self._note()
            return True
        now = handler._loop.time()
        slow = [(rate, h) for h in self.open if (rate := h.body_rate(now)) < MIN_DATA_RATE]
        if slow:
            _, victim = min(slow, key=lambda pair: pair[0])
            self.open.discard(victim)
            victim.evict_slow_body()
            self.closed_slow += 1
            self.open.add(handler)
            self._note()
            return True
        self.refused += 1
        self._note()
        return False

    def _note(self) -> None:
        now = asyncio.get_event_loop().time()
        if now - self._noted_at < NOTE_EVERY:
            return
        self._noted_at = now
        log.warning(
            "connection cap reached (%d open): so far closed %d idle connection(s) and %d "
            "sending a body below %d bytes/s to make room, refused %d while every one was "
            "busy (--max-connections)",
            self.cap, self.closed_idle, self.closed_slow, MIN_DATA_RATE, self.refused,
        )  # fmt: skip


class EdgeHandler(web.RequestHandler):
    """One connection: aiohttp's handler with header and body deadlines."""

    def __init__(self, manager: EdgeServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.edge = manager
        self.idle_since = 0.0
        self._head_timer: asyncio.TimerHandle | None = None
        self._partial = False  # bytes of a request that is not complete yet
        self._body_timer: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None  # a request body still arriving
        self._body_since = 0.0
        self._body_bytes = 0

    def body_rate(self, now: float) -> float:
        """Bytes a second of the request body still arriving (averaged since its
        headers, over at least ``RATE_GRACE``); infinite when no body is awaited."""
        body = self._body
        if body is None or body.is_eof() or self.transport is None:
            return float("inf")
        return self._body_bytes / max(now - self._body_since, RATE_GRACE)

    def evict_slow_body(self) -> None:
        """Close this connection to make room for another: its body is too slow."""
        error = ProviderError(
            E.REQUEST_TIMEOUT,
            f"The request body arrived at less than {MIN_DATA_RATE} bytes/s while the server "
            "was at its connection cap (--max-connections): closed to make room",
        )
        if self._body is not None and not self._body.is_eof():
            self._body.set_exception(BodyTimeout(E.REQUEST_TIMEOUT, error.message))
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.write(raw_error(error))
        self.force_close()

    @property
    def idle(self) -> bool:
        """Not handling a request: waiting for one (or for headers that never end)."""
        return not (self._request_in_progress or self._messages or self._upgraded)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.idle_since = self._loop.time()
        if not self.edge.admit(self):
            error = ProviderError(
                E.TOO_BUSY,
                f"Too many connections ({self.edge.cap}, every one busy with a request): "
                "try again shortly",
            )
            with contextlib.suppress(Exception):
                transport.write(raw_error(error))  # type: ignore[attr-defined]
            transport.close()
            self._manager = None  # never registered: connection_lost has nothing to do
            return
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.edge.open.discard(self)
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        count = self._request_count
        super().data_received(data)
        new = self._request_count - count
        self._partial = not new and self.idle
        if new:  # a request line and headers arrived in full
            self.idle_since = self._loop.time()
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            _, payload = self._messages[-1] if self._messages else (None, None)
            if isinstance(payload, StreamReader) and not payload.is_eof():
                self._arm_body_timer(payload)
                self._body, self._body_since, self._body_bytes = payload, self._loop.time(), 0
        elif self._body is not None and not self._body.is_eof():
            self._body_bytes += len(data)
        elif self._head_timer is None and self.idle:
            self._arm_head_timer()  # the first bytes of the next request

    def _arm_head_timer(self) -> None:
        self._head_timer = self._loop.call_later(
            self.edge.settings.header_timeout, self._head_expired, self._request_count
        )

    def _head_expired(self, count: int) -> None:
        self._head_timer = None
        if self.transport is None or self._request_count != count or not self.idle:
            return
        if not self._partial:  # a connection that never said anything: just close it
            self.force_close()
            return
        timeout = self.edge.settings.header_timeout
        error = ProviderError(
            E.REQUEST_TIMEOUT,
            f"The request line and headers did not arrive within {timeout:g}s (--header-timeout)",
        )
        self.transport.write(raw_error(error))
        self.force_close()

    def _arm_body_timer(self, payload: StreamReader) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
        self._body_timer = self._loop.call_later(
            self.edge.settings.body_timeout, self._body_expired, payload
        )

    def _body_expired(self, payload: StreamReader) -> None:
        self._body_timer = None
        if payload.is_eof():
            return
        timeout = self.edge.settings.body_timeout
        payload.set_exception(
            BodyTimeout(
                E.REQUEST_TIMEOUT,
                f"The request body did not arrive within {timeout:g}s (--body-timeout)",
            )
        )

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's last resort (a request it could not parse, or an exception that
        escaped the app), answered in the provider's error shape."""
        if isinstance(exc, ConnectionResetError):
            log.debug("peer reset the connection during %s %s", request.method, request.path)
            raise ConnectionResetError("peer reset the connection")  # nothing to answer
        if isinstance(exc, LineTooLong):
            error = ProviderError(E.HEADERS_TOO_LARGE, f"{E.HEADERS_TOO_LARGE.message}: {exc}")
        elif status < 500:
            reason = getattr(exc, "message", None) or message or ""
            error = ProviderError(
                E.REQUEST_UNREADABLE, f"{E.REQUEST_UNREADABLE.message}: {reason}"[:300]
            )
            log.debug("unreadable request from %s: %s", request.remote, reason)
        else:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            error = ProviderError(E.SERVER_ERROR)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer had begun: the connection is dropped")
        response = error_response(error)
        response.force_close()
        return response


class EdgeRunner(web.AppRunner):
    """``web.AppRunner`` whose server is an ``EdgeServer`` with these settings."""

    def __init__(
        self, app: web.Application, settings: Settings, *, cap: int, **kwargs: Any
    ) -> None:
        kwargs.setdefault("keepalive_timeout", settings.keepalive_timeout)
        super().__init__(app, **kwargs)
        self.settings = settings
        self.cap = cap
        runner_only = ("handle_signals", "shutdown_timeout", "access_log_class")
        self.handler_kwargs = {k: v for k, v in kwargs.items() if k not in runner_only}

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()  # the app's startup; aiohttp's own Server
        return EdgeServer(
            base.request_handler,
            request_factory=base.request_factory,
            settings=self.settings,
            cap=self.cap,
            **self.handler_kwargs,
        )
