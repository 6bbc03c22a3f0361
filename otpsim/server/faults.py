"""Connection-level faults, performed on the request's connection (as WireMock's).

The engine decides (``Simulator.fault_for``, or ``FaultFired`` from ``create_otp``);
this module does it to the connection, then hands aiohttp a response it cannot send (its
connection is gone), which aiohttp drops quietly as a client that went away:

* ``reset``: the connection is aborted with no answer (SO_LINGER 0: a TCP reset);
* ``hang``: no answer until the client gives up, the fault's bound passes (at most
  ``--max-wait``), the server stops, or another hang or long poll needs its
  ``--max-streams`` slot (the oldest gives way); then the connection is closed;
* ``truncated``: a status line and headers whose ``Content-Length`` promises more body
  than is sent, then the connection is closed;
* ``garbage``: bytes that are not HTTP, then the connection is closed.

Each acts on its own request's connection only; nothing else is held.

A rule's ``latency`` is waited as a hang is (:func:`latency_pause`, the simulator's
pause): in a ``--max-streams`` slot, ended early (the request is then answered at once,
as usual) when a newcomer needs the slot or the server stops.

Example::

    fault = await sim.fault_for("verify", account=account, subject=otp_id)
    if fault is not None:
        return await perform(request, fault, ok_status=200)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from aiohttp import web

from otpsim.engine.network import Fault, FaultKind
from otpsim.server.keys import STOPPING, STREAMS

GARBAGE = b"\x00\xff\xfeotpsim fault: garbage, not HTTP\x00\r\n\x7f\x80"
POLL_EVERY = 0.1  # seconds between two looks at a hung connection (client gone?)
# The status the metrics and the access log show for a request answered by no answer.
NO_ANSWER = 499


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _close(request: web.Request, *, reset: bool = False) -> None:
    transport = request.transport
    if transport is None:
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        return
    transport.close()  # what was written is sent first


def _truncated(status: int) -> bytes:
    body = b'{"status": "PENDING", "otpId": "'
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body) * 4}\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _hang(request: web.Request, seconds: float) -> None:
    """Hold the request (in a --max-streams slot) until the client leaves, ``seconds``
    pass, the server stops, or a newcomer pre-empts it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    stopping = request.app[STOPPING]
    with request.app[STREAMS].slot("hung request") as stream:
        while not _gone(request) and not stopping.is_set() and not stream.ended.is_set():
            left = deadline - loop.time()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stream.ended.wait(), min(left, POLL_EVERY))


def latency_pause(app: web.Application) -> Callable[[float], Awaitable[None]]:
    """The simulator's pause for a rule's latency on this app: up to ``seconds`` in a
    ``--max-streams`` slot (503 when there is none to be had, as for a hang), over at
    once when a newcomer pre-empts it (the oldest gives way) or the server stops."""

    async def pause(seconds: float) -> None:
        stopping = app[STOPPING]
        if stopping.is_set() or seconds <= 0:
            return
        with app[STREAMS].slot("delayed request (a rule's latency)") as stream:
            waits = {
                asyncio.ensure_future(stream.ended.wait()),
                asyncio.ensure_future(stopping.wait()),
            }
            try:
                await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()

    return pause


async def perform(request: web.Request, fault: Fault, *, ok_status: int) -> web.Response:
    """Do ``fault`` to this request's connection; returns the response aiohttp will
    fail to send (the connection is closed by then). ``ok_status`` is the endpoint's
    success status, which a truncated answer claims."""
    if fault.kind is FaultKind.HANG:
        await _hang(request, fault.hang)
        _close(request)
    elif fault.kind is FaultKind.RESET:
        _close(request, reset=True)
    elif request.transport is not None:
        data = GARBAGE if fault.kind is FaultKind.GARBAGE else _truncated(ok_status)
        request.transport.write(data)
        _close(request)
    # (A truncated answer is no answer either: the metrics, the access log and the
    # request journal show 499, whatever status line the client was sent.)
    response = web.Response(status=NO_ANSWER)
    response.force_close()
    return response
