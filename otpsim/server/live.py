"""The live hub: ``GET /_sim/ws`` streams every simulator event to websocket clients.

Each client gets the versioned events (``{"v": 1, "type": ..., "data": ...}``) in
order, through its own bounded queue. A client that falls ``queue_size`` events behind
(slow or dead) is dropped, so it can never hold the others up; it reconnects and
reloads its state. A browser's ``Origin`` must be this server's own; clients that send
no Origin (``otpsim tail``, scripts) are accepted.

Example::

    hub = LiveHub(sim.bus, sim.clock_json, streams=Streams(settings.max_streams))
    hub.start()
    app.router.add_get("/_sim/ws", hub.handle)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from otpsim import __version__, jsoncodec
from otpsim.errors import E, ProviderError
from otpsim.events import Event, EventBus
from otpsim.server.edge import Streams

log = logging.getLogger("otpsim.live")

QUEUE_SIZE = 1024  # events a client may fall behind before it is dropped
MAX_CLIENT_MESSAGE = 4096  # bytes; clients have nothing to say beyond a ping
MAX_CLIENT_MESSAGES = 100  # a client that keeps talking is cut off (1008)
CLOSE_WAIT = 0.5  # seconds clients get to answer the close frame at shutdown


@dataclass(eq=False)
class _Client:
    ws: web.WebSocketResponse
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: bool = False


def same_origin(request: web.Request) -> bool:
    """True when the request has no Origin, or its Origin names this very host."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == request.host


class LiveHub:
    """Gets the bus and a view of the clock (for ``hello``), not the simulator."""

    def __init__(
        self,
        bus: EventBus,
        clock: Callable[[], dict[str, object]],
        *,
        streams: Streams,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self.streams = streams
        self.queue_size = queue_size
        self._clients: set[_Client] = set()
        self._unsubscribe: object = None

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def start(self) -> None:
        # Dormant while no browser is connected: events then cost the hub nothing. It
        # keeps its place among the listeners, so what a browser sees keeps its order.
        self._unsubscribe = self._bus.subscribe(self._on_event, awake=bool(self._clients))

    def _join(self, client: _Client) -> None:
        self._clients.add(client)
        self._bus.wake(self._on_event)

    def _forget(self, client: _Client) -> None:
        self._clients.discard(client)
        if not self._clients:
            self._bus.sleep(self._on_event)

    async def close(self) -> None:
        """Close every websocket (1001 going away) so shutdown is not held up.

        All at once, and for at most CLOSE_WAIT seconds: a client that does not answer
        the close frame is left to the server's own shutdown, which ends its handler.
        """
        if callable(self._unsubscribe):
            self._unsubscribe()
            self._unsubscribe = None
        clients, self._clients = list(self._clients), set()
        self._bus.sleep(self._on_event)
        closing = [
            client.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
            for client in clients
        ]
        if closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), CLOSE_WAIT)

    def _on_event(self, event: Event) -> None:
        if not self._clients:
            return
        text = jsoncodec.dumps_text(event.to_json())
        for client in list(self._clients):
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                self._drop(client)

    def _drop(self, client: _Client) -> None:
        """Forget a client that fell too far behind; its socket closes with 1013."""
        self._forget(client)
        client.dropped = True
        log.info("live client dropped: %d events behind", client.queue.qsize())
        task = asyncio.ensure_future(
            client.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow")
        )
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        if not same_origin(request):
            raise ProviderError(
                E.SIM_FORBIDDEN,
                f"Cross-origin websocket refused (Origin {request.headers.get('Origin')})",
            )
        with self.streams.slot("websocket"):  # 503 when --max-streams are open
            return await self._serve(request)

    async def _serve(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_CLIENT_MESSAGE)
        client = _Client(ws, asyncio.Queue(self.queue_size))
        hello = Event("hello", {"version": __version__, "clock": self._clock()})
        try:
            await ws.prepare(request)
            await ws.send_str(jsoncodec.dumps_text(hello.to_json()))
        except web.HTTPException as exc:  # not a websocket handshake: aiohttp's plain 400
            detail = f": {exc.text}"[:200] if exc.text else ""
            raise ProviderError(
                E.SIM_INVALID_PARAM,
                "/_sim/ws expects a websocket handshake (Upgrade: websocket, Connection: "
                f"Upgrade, Sec-WebSocket-Version: 13, a valid Sec-WebSocket-Key){detail}",
            ) from None
        except ConnectionResetError:
            # The peer left (or reset) during the handshake: nothing went wrong here.
            log.debug("live client left during the handshake")
            return ws
        self._join(client)
        sender = asyncio.create_task(self._send(client))
        try:
            said = 0
            async for message in ws:
                # Clients have nothing to say; anything but small text ends the session.
                if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                said += 1
                if said > MAX_CLIENT_MESSAGES:
                    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"flood")
                    break
        finally:
            self._forget(client)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return ws

    async def _send(self, client: _Client) -> None:
        while True:
            text = await client.queue.get()
            if text is None or client.ws.closed:
                return
            try:
                await client.ws.send_str(text)
            except (ConnectionResetError, RuntimeError):
                return


HUB = web.AppKey("hub", LiveHub)
