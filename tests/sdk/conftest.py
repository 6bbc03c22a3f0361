"""An otpsim server for the official SDK (``smscx-client``), which is synchronous.

One in-process server per module (per xdist worker), on 127.0.0.1 and an ephemeral
port, in its own thread, as the pytest plugin runs it; reset before every test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import smscx_client
from support import call

from otpsim.config import Settings
from otpsim.pytest_plugin import SimulatorServer

API_KEY = "sdk-key"
POOR_KEY = "sdk-poor-key"  # starts with a balance of 0.07: one SMS (0.05), not two
CLIENT_ID, CLIENT_SECRET = "sdk-app", "sdk-secret"
FIXED_NUMBER = "+33612340000"
SETTINGS = Settings(
    port=0,
    api_keys=(API_KEY, POOR_KEY),
    oauth_clients=((CLIENT_ID, CLIENT_SECRET),),
    balances=((POOR_KEY, 0.07),),
    no_coverage=("CU",),
    fixed_pins=((FIXED_NUMBER, "1234"),),  # a 4-digit PIN: a default request (6) misfits
    max_body_bytes=16 * 1024,
    log_level="warning",
)


@pytest.fixture(scope="module")
def sdk_server() -> Iterator[SimulatorServer]:
    server = SimulatorServer(SETTINGS)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def base(sdk_server: SimulatorServer) -> str:
    """The server's base URL, reset to a clean state (clock and balances included)."""
    status, _ = call("POST", f"{sdk_server.url}/_sim/reset")
    assert status == 200
    return sdk_server.url


def sdk_client(base: str, **auth: Any) -> smscx_client.ApiClient:
    """An SDK client pointed at otpsim (default: the API key), client-side validations on."""
    configuration = smscx_client.Configuration(host=base, **(auth or {"api_key": API_KEY}))
    assert configuration.client_side_validation  # the models check every answer
    return smscx_client.ApiClient(configuration)
