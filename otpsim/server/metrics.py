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

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from aiohttp import web

from otpsim.events import Event, EventBus

if TYPE_CHECKING:  # prometheus_client is loaded at the first scrape, not at start-up
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


# OTP counts and SMS counts by status, read at scrape time.
StatusCounts = Callable[[], tuple[dict[str, int], dict[str, int]]]


class _StoreCounts:
    """Counts by status, read from the store at scrape time."""

    def __init__(self, counts: StatusCounts) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        by_otp_status, by_sms_status = self._counts()
        otps = GaugeMetricFamily("otpsim_otps", "OTPs stored, by status", labels=["status"])
        for status, count in sorted(by_otp_status.items()):
            otps.add_metric([status], count)
        messages = GaugeMetricFamily(
            "otpsim_messages", "SMS stored, by delivery status", labels=["status"]
        )
        for status, count in sorted(by_sms_status.items()):
            messages.add_metric([status], count)
        return [otps, messages]


class _RequestStats:
    """HTTP request counts and durations, kept as plain numbers and shaped into
    Prometheus metrics at scrape time.

    prometheus_client's own Counter and Histogram take a lock and walk the buckets on
    every observation: a few percent of every request. The event loop is the only
    writer, so no lock is needed, and the cumulative buckets are summed when read.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}
        # (route, method) -> (count per bucket, not cumulative, the last for +Inf; [sum])
        self.durations: dict[tuple[str, str], tuple[list[int], list[float]]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        entry = self.durations.get((route, method))
        if entry is None:
            entry = self.durations[route, method] = ([0] * (len(BUCKETS) + 1), [0.0])
        entry[0][bisect_left(BUCKETS, seconds)] += 1
        entry[1][0] += seconds

    def collect(self) -> Iterable[Metric]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        requests = CounterMetricFamily(
            "otpsim_http_requests", "HTTP requests answered", labels=["route", "method", "status"]
        )
        for (route, method, status), count in sorted(self.counts.items()):
            requests.add_metric([route, method, str(status)], count)
        latency = HistogramMetricFamily(
            "otpsim_http_request_duration_seconds",
            "Time to answer an HTTP request",
            labels=["route", "method"],
        )
        bounds = [*map(str, BUCKETS), "+Inf"]
        for (route, method), (per_bucket, total) in sorted(self.durations.items()):
            running, cumulative = 0, []
            for bound, count in zip(bounds, per_bucket, strict=True):
                running += count
                cumulative.append((bound, running))
            latency.add_metric([route, method], cumulative, total[0])
        return [requests, latency]


class _Attempts:
    """Callback attempts by outcome, as prometheus_client's labelled Counter shows them
    (``_total``, and ``_created``: when the outcome was first counted), in the order
    the outcomes first occurred."""

    def __init__(self) -> None:
        self.counts: dict[str, list[float]] = {}  # outcome -> [count, created]

    def inc(self, outcome: str) -> None:
        entry = self.counts.get(outcome)
        if entry is None:
            entry = self.counts[outcome] = [0.0, time.time()]
        entry[0] += 1

    def collect(self) -> Iterable[Metric]:
        from prometheus_client import metrics
        from prometheus_client.core import CounterMetricFamily

        attempts = CounterMetricFamily(
            "otpsim_callback_attempts",
            "Callback delivery attempts, by outcome",
            labels=["outcome"],
        )
        # ``_created`` as its Counter would: unless PROMETHEUS_DISABLE_CREATED_SERIES or
        # disable_created_metrics() turned it off (the switch it keeps for its metrics).
        shown = metrics._use_created
        for outcome, (count, created) in self.counts.items():
            attempts.add_metric([outcome], count, created=created if shown else None)
        return [attempts]


def _registry(*sources: Callable[[], Iterable[Metric]]) -> CollectorRegistry:
    """One registry (this simulator's own) collecting ``sources`` in order."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.registry import Collector

    class Source(Collector):
        def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
            self._collect = collect

        def collect(self) -> Iterable[Metric]:
            return self._collect()

    registry = CollectorRegistry(auto_describe=True)
    for source in sources:
        registry.register(Source(source))
    return registry


def attempt_outcome(status_code: int | None, error: str | None) -> str:
    if status_code is not None:
        return "success" if 200 <= status_code < 300 else "http_error"
    if error and error.startswith("timeout"):
        return "timeout"
    if error and error.startswith("connection failed"):
        return "connection_error"
    return "other_error"


class Metrics:
    """Gets the bus (callback attempts) and a status count, not the simulator."""

    def __init__(self, bus: EventBus, counts: StatusCounts) -> None:
        self._counts = _StoreCounts(counts)
        self.requests = _RequestStats()  # the middleware's observe() goes straight here
        self._attempts = _Attempts()
        self._registry: CollectorRegistry | None = None  # made at the first scrape
        bus.subscribe(self._on_event, "callback.attempt")

    def _on_event(self, event: Event) -> None:  # callback.attempt
        attempt = event.data["attempt"]
        self._attempts.inc(attempt_outcome(attempt["statusCode"], attempt["error"]))

    def render(self) -> bytes:
        from prometheus_client.exposition import generate_latest

        if self._registry is None:
            self._registry = _registry(
                self._counts.collect, self.requests.collect, self._attempts.collect
            )
        return generate_latest(self._registry)


METRICS = web.AppKey("metrics", Metrics)


async def metrics(request: web.Request) -> web.Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
