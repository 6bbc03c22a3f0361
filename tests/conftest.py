"""Shared fixtures: a frozen clock, and a test client on an in-process simulator."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support import START, launch, stop

from otpsim.clock import Clock
from otpsim.config import Settings
from otpsim.server.app import create_app
from otpsim.store import Store

pytest_plugins = ["pytester"]

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def clock() -> Clock:
    return Clock(start=START, frozen=True)


@pytest.fixture
def make_client(aiohttp_client: Any, clock: Clock) -> MakeClient:
    """Start the simulator app with these settings (and this store: a test that pokes
    at SQLite makes its own); returns its test client."""

    async def make(
        settings: Settings | None = None, *, store: Store | None = None, **overrides: Any
    ) -> TestClient[Any, Any]:
        base = settings or Settings()
        if overrides:
            from dataclasses import replace

            base = replace(base, **overrides)
        app = create_app(base, clock=clock, rng=random.Random(7), store=store)
        return await aiohttp_client(app)  # type: ignore[no-any-return]

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient[Any, Any]:
    return await make_client()


StartServer = Callable[..., tuple["subprocess.Popen[str]", str]]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start ``otpsim serve --port 0`` as a real process; returns (process, base URL).

    Every process started is killed (if still running) and reaped after the test.
    """
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
        proc, base = launch(tmp_path, "--host", "127.0.0.1", *args, env=env)
        procs.append(proc)
        return proc, base

    yield start
    for proc in procs:
        stop(proc)
