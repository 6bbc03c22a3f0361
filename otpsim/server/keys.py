"""Typed keys for app and request state.

Each component's AppKey is declared next to its class (``callbacks.DISPATCHER``,
``live.HUB``, ``metrics.METRICS``, ``edge.STREAMS``) and gathered here, so the modules
that declare them never import this one (no import cycle). ``SIM`` lives here: the
engine imports no aiohttp; so does ``STOPPING``, the app's own shutdown event.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from otpsim.domain.otp import Otp
from otpsim.engine import Principal, Simulator
from otpsim.server.callbacks import DISPATCHER
from otpsim.server.edge import STREAMS
from otpsim.server.http import BODY, RAW_BODY
from otpsim.server.live import HUB
from otpsim.server.metrics import METRICS

SIM = web.AppKey("sim", Simulator)
# Set when the server starts to stop: long polls answer at once, websockets close (1001).
# The app's own state (app.going_away sets it), declared here beside SIM: no component
# class owns it, and the handlers that read it (control.py) must not import app.py.
STOPPING = web.AppKey("stopping", asyncio.Event)
REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)
EXTRA_HEADERS = web.RequestKey("extra_headers", dict[str, str])
# For the request journal: the OTP a provider request concerned (as its handler found or
# created it), and the OAuth client a token was issued to.
CONCERNS = web.RequestKey("concerns", Otp)
CLIENT_ID = web.RequestKey("client_id", str)

__all__ = [
    "BODY",
    "CLIENT_ID",
    "CONCERNS",
    "DISPATCHER",
    "EXTRA_HEADERS",
    "HUB",
    "METRICS",
    "PRINCIPAL",
    "RAW_BODY",
    "REQUEST_ID",
    "SIM",
    "STOPPING",
    "STREAMS",
]
