"""Typed keys for app and request state."""

from __future__ import annotations

import asyncio

from aiohttp import web

from otpsim.auth import Principal
from otpsim.server.callbacks import CallbackDispatcher
from otpsim.server.edge import Streams
from otpsim.server.live import LiveHub
from otpsim.server.metrics import Metrics
from otpsim.simulator import Simulator

SIM = web.AppKey("sim", Simulator)
DISPATCHER = web.AppKey("dispatcher", CallbackDispatcher)
HUB = web.AppKey("hub", LiveHub)
METRICS = web.AppKey("metrics", Metrics)
STREAMS = web.AppKey("streams", Streams)
# Set when the server starts to stop: long polls answer at once, websockets close (1001).
STOPPING = web.AppKey("stopping", asyncio.Event)
REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)
EXTRA_HEADERS = web.RequestKey("extra_headers", dict[str, str])
