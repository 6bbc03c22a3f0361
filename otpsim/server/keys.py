"""Typed keys for app and request state.

Each component's AppKey is declared next to its class (``callbacks.DISPATCHER``,
``live.HUB``, ``metrics.METRICS``, ``edge.STREAMS``) and gathered here, so the modules
that declare them never import this one (no import cycle). ``SIM`` lives here: the
engine imports no aiohttp.
"""

from __future__ import annotations

from aiohttp import web

from otpsim.engine import Principal, Simulator
from otpsim.server.callbacks import DISPATCHER
from otpsim.server.edge import STREAMS
from otpsim.server.live import HUB
from otpsim.server.metrics import METRICS

SIM = web.AppKey("sim", Simulator)
REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)
EXTRA_HEADERS = web.RequestKey("extra_headers", dict[str, str])

__all__ = [
    "DISPATCHER",
    "EXTRA_HEADERS",
    "HUB",
    "METRICS",
    "PRINCIPAL",
    "REQUEST_ID",
    "SIM",
    "STREAMS",
]
