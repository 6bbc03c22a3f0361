"""``GET /_sim/metrics``: Prometheus metrics of one simulator (its own registry).

* ``otpsim_otps{status}``: OTPs stored, by status (gauge)
* ``otpsim_messages{status}``: SMS stored, by delivery status (gauge)
* ``otpsim_callback_attempts_total{outcome}``: callback attempts by outcome (counter):
  ``success`` (2xx), ``http_error``, ``timeout``, ``connection_error``, ``other_error``
* ``otpsim_http_requests_total{route,method,status}`` (counter) and
  ``otpsim_http_request_duration_seconds{route,method}`` (histogram), by route name
  (``api.otp.create``, ``sim.messages``, ...; ``unmatched`` for unknown paths)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from otpsim.events import Event
from otpsim.simulator import Simulator

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _StoreCollector(Collector):
    """Counts by status, read from the store at scrape time."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def collect(self) -> Iterator[GaugeMetricFamily]:
        otps = GaugeMetricFamily("otpsim_otps", "OTPs stored, by status", labels=["status"])
        for status, count in sorted(self.sim.store.count_otps_by_status().items()):
            otps.add_metric([status], count)
        yield otps
        messages = GaugeMetricFamily(
            "otpsim_messages", "SMS stored, by delivery status", labels=["status"]
        )
        for status, count in sorted(self.sim.store.count_messages_by_status().items()):
            messages.add_metric([status], count)
        yield messages


def attempt_outcome(status_code: int | None, error: str | None) -> str:
    if status_code is not None:
        return "success" if 200 <= status_code < 300 else "http_error"
    if error and error.startswith("timeout"):
        return "timeout"
    if error and error.startswith("connection failed"):
        return "connection_error"
    return "other_error"


class Metrics:
    def __init__(self, sim: Simulator) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_StoreCollector(sim))
        self.requests = Counter(
            "otpsim_http_requests",
            "HTTP requests answered",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "otpsim_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["route", "method"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.callback_attempts = Counter(
            "otpsim_callback_attempts",
            "Callback delivery attempts, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        sim.bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.type == "callback.attempt":
            attempt = event.data["attempt"]
            outcome = attempt_outcome(attempt["statusCode"], attempt["error"])
            self.callback_attempts.labels(outcome).inc()

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:  # .labels() costs a lock and a lookup: once per key is enough
            children = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route, method),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def metrics(request: web.Request) -> web.Response:
    from otpsim.server.keys import METRICS

    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
