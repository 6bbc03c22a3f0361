"""GET /_sim/metrics after a known sequence of calls."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from support import FR, KEY, create, pin_of

from otpsim.config import Settings
from otpsim.engine.simulator import Simulator
from otpsim.server.metrics import Metrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_after_a_known_sequence(make_client: Any, aiohttp_server: Any) -> None:
    async def accept(request: web.Request) -> web.Response:
        return web.Response()

    hook = web.Application()
    hook.router.add_post("/hook", accept)
    receiver = await aiohttp_server(hook)
    client = await make_client(Settings(callback_batch_window=0, callback_retry_schedule=(0, 60)))
    verified = await create(client, otpCallbackUrl=str(receiver.make_url("/hook")))
    await client.post(
        f"/otp/{verified['otpId']}",
        json={"pin": await pin_of(client, verified["otpId"])},
        headers=KEY,
    )
    cancelled = await create(client, otpCallbackUrl="http://127.0.0.1:9/nobody")
    await client.delete(f"/otp/{cancelled['otpId']}", headers=KEY)
    await create(client)
    await client.post("/otp", json={"phoneNumber": FR})  # 401
    for _ in range(100):
        text = await (await client.get("/_sim/metrics")).text()
        if (
            "otpsim_callback_attempts_total" in text
            and "connection_error" in text
            and "success" in text
        ):
            break
        await asyncio.sleep(0.02)
    resp = await client.get("/_sim/metrics")
    assert resp.content_type == "text/plain"
    got = samples(await resp.text())
    assert got[("otpsim_otps", (("status", "PENDING"),))] == 1
    assert got[("otpsim_otps", (("status", "VERIFIED"),))] == 1
    assert got[("otpsim_otps", (("status", "CANCELLED"),))] == 1
    assert got[("otpsim_messages", (("status", "DELIVERED"),))] == 3
    create_201 = (("method", "POST"), ("route", "api.otp.create"), ("status", "201"))
    assert got[("otpsim_http_requests_total", create_201)] == 3
    create_401 = (("method", "POST"), ("route", "api.otp.create"), ("status", "401"))
    assert got[("otpsim_http_requests_total", create_401)] == 1
    count = (
        "otpsim_http_request_duration_seconds_count",
        (("method", "POST"), ("route", "api.otp.create")),
    )
    assert got[count] == 4
    assert got[("otpsim_callback_attempts_total", (("outcome", "success"),))] == 1
    assert got[("otpsim_callback_attempts_total", (("outcome", "connection_error"),))] == 1


def test_duration_buckets_are_cumulative_and_inclusive() -> None:
    sim = Simulator(Settings())
    metrics = Metrics(sim.bus, sim.status_counts)
    for seconds in (0.0005, 0.0007, 0.003, 0.003, 9.0):  # 0.0005 sits on a bound: le
        metrics.requests.observe("api.otp.get", "GET", 200, seconds)
    metrics.requests.observe("api.otp.get", "GET", 404, 0.0001)
    got = samples(metrics.render().decode())
    route = (("method", "GET"), ("route", "api.otp.get"))
    bucket = lambda le: got[("otpsim_http_request_duration_seconds_bucket", (("le", le), *route))]  # noqa: E731
    assert [bucket(le) for le in ("0.0005", "0.001", "0.0025", "0.005", "5.0", "+Inf")] == [
        2, 3, 3, 5, 5, 6,
    ]  # fmt: skip
    assert got[("otpsim_http_request_duration_seconds_count", route)] == 6
    assert got[("otpsim_http_request_duration_seconds_sum", route)] == pytest.approx(9.0073)
    assert got[("otpsim_http_requests_total", (*route, ("status", "404")))] == 1
    assert got[("otpsim_http_requests_total", (*route, ("status", "200")))] == 5


def test_callback_attempts_leave_out_created_when_prometheus_client_does() -> None:
    """``_created`` series follow prometheus_client's switch
    (``PROMETHEUS_DISABLE_CREATED_SERIES``, ``disable_created_metrics()``), as its own
    Counter did before the attempts were counted in a plain dict."""
    import prometheus_client
    from prometheus_client import metrics as client_metrics

    from otpsim.server.metrics import _Attempts

    attempts = _Attempts()
    attempts.inc("success")

    def names() -> set[str]:
        return {sample.name for family in attempts.collect() for sample in family.samples}

    was = client_metrics._use_created
    try:
        prometheus_client.enable_created_metrics()
        assert names() == {"otpsim_callback_attempts_total", "otpsim_callback_attempts_created"}
        prometheus_client.disable_created_metrics()
        assert names() == {"otpsim_callback_attempts_total"}
    finally:
        client_metrics._use_created = was
