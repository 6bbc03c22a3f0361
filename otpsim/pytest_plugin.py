"""The otpsim pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:

* ``otpsim``: the simulator for one test, clean at its start. ``otpsim.url`` is the base
  URL to give the code under test; helpers wait instead of sleeping::

      def test_login_sends_a_code(otpsim, app):
          app.start_login(phone="+33612345678", sms_api=otpsim.url, api_key=otpsim.api_key)
          pin = otpsim.latest_pin("+33612345678", timeout=5)
          assert app.finish_login(pin)

  ``otpsim.aio`` has the same helpers as coroutines, for async tests.
* ``otpsim_server`` (session): one simulator per test session (per xdist worker), started
  in-process on 127.0.0.1 on a free port, or the one at ``$OTPSIM_URL``.
* ``otpsim_settings`` (session): the in-process simulator's Settings; override it in a
  conftest.py to change defaults or credentials.
* ``otpsim_api_key`` (session): the API key the helpers (and your code) use; each xdist
  worker gets its own, so workers never see each other's messages.

An unexpected failure inside an in-process simulator (a 500 it did not mean to answer)
fails the test during which it happened, with the simulator's traceback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from otpsim.client import AsyncClient, Client, Json
from otpsim.config import Settings


class _ErrorLog(logging.Handler):
    """Collects what the simulator logs at ERROR and above."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class SimulatorServer:
    """A simulator running in a background thread with its own event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = ""
        self.errors = _ErrorLog()
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="otpsim", daemon=True)

    def start(self) -> str:
        logging.getLogger("otpsim").addHandler(self.errors)
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("the otpsim server did not start within 30 s")
        if self._failed is not None:
            raise RuntimeError(f"the otpsim server did not start: {self._failed}")
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)
        logging.getLogger("otpsim").removeHandler(self.errors)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start()
            self._failed = exc
            self._ready.set()

    async def _serve(self) -> None:
        from aiohttp import web

        from otpsim.server.app import create_app

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(create_app(self.settings), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", self.settings.port)
            await site.start()
            self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()


class _Async:
    """``otpsim.aio``: the helpers as coroutines (each call uses its own connection)."""

    def __init__(self, url: str, api_key: str, admin_token: str | None) -> None:
        self._args = (url, api_key, admin_token)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        url, api_key, admin_token = self._args
        method = getattr(AsyncClient, name, None)
        if method is None or name.startswith("_"):
            raise AttributeError(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            async with AsyncClient(
                url, api_key=api_key, account=api_key, admin_token=admin_token
            ) as client:
                return await getattr(client, name)(*args, **kwargs)

        return call


class Otpsim:
    """The ``otpsim`` fixture: one test's view of the simulator.

    Queries see only this test's account (``api_key``); with an in-process simulator
    every test also starts with a fresh clock and no scenario.
    """

    def __init__(self, url: str, api_key: str, admin_token: str | None = None) -> None:
        self.url = url
        self.api_key = api_key
        self.client = Client(url, api_key=api_key, account=api_key, admin_token=admin_token)
        self.aio = _Async(url, api_key, admin_token)

    def latest_pin(
        self, phone: str | None = None, *, otp_id: str | None = None, timeout: float = 5.0
    ) -> str:
        """The PIN of the newest SMS to ``phone`` (or of ``otp_id``), waiting for it."""
        return self.client.latest_pin(phone, otp_id=otp_id, timeout=timeout)

    def latest_message(
        self, phone: str | None = None, *, otp_id: str | None = None, timeout: float = 5.0
    ) -> Json:
        message = self.client.latest_message(phone, otp_id=otp_id, wait=timeout)
        if message is None:
            from otpsim.client import NoMessage

            raise NoMessage(f"no SMS delivered to {phone or otp_id} within {timeout:g}s")
        return message

    def messages(self, phone: str | None = None) -> list[Json]:
        """SMS sent in this test, newest first."""
        return self.client.messages(phone)

    def otps(self, phone: str | None = None) -> list[Json]:
        return self.client.otps(phone)

    def advance(self, seconds: float) -> Json:
        """Move the simulator clock; expiries and callback retries in between happen."""
        return self.client.advance(seconds)

    def callbacks(self, otp_id: str | None = None) -> list[Json]:
        """Callback deliveries (with every attempt) of this test, or of one OTP."""
        return self.client.callbacks(otp_id)

    def use_scenario(self, scenario: str | Path | dict[str, Any]) -> Json:
        """Activate a scenario's network rules: a file path, YAML text or a mapping."""
        return self.client.use_scenario(scenario)

    def reset(self) -> None:
        self.client.reset()


def _worker(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else "main"


@pytest.fixture(scope="session")
def otpsim_settings() -> Settings:
    """Settings of the in-process simulator; override to change defaults or credentials."""
    return Settings(port=0, callback_batch_window=0.05, shutdown_grace=1.0)


@pytest.fixture(scope="session")
def otpsim_api_key(request: pytest.FixtureRequest) -> str:
    """The API key (and so the account) this test session uses; one per xdist worker."""
    return f"pytest-{_worker(request.config)}"


@pytest.fixture(scope="session")
def otpsim_server(otpsim_settings: Settings) -> Iterator[SimulatorServer | str]:
    """The simulator of this session: an in-process one, or the one at $OTPSIM_URL."""
    external = os.environ.get("OTPSIM_URL")
    if external:
        Client(external).health()  # fail early and clearly if it is not there
        yield external.rstrip("/")
        return
    server = SimulatorServer(otpsim_settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def otpsim(otpsim_server: SimulatorServer | str, otpsim_api_key: str) -> Iterator[Otpsim]:
    """The simulator, clean for this test (see the module docstring)."""
    if isinstance(otpsim_server, str):
        helper = Otpsim(otpsim_server, otpsim_api_key, os.environ.get("OTPSIM_ADMIN_TOKEN"))
        helper.reset()  # this account only: the server is shared
        yield helper
        return
    admin = otpsim_server.settings.admin_token
    helper = Otpsim(otpsim_server.url, otpsim_api_key, admin)
    owner = Client(otpsim_server.url, admin_token=admin)
    owner.reset()  # everything, clock included: the server is ours
    owner.clear_scenario()
    seen = len(otpsim_server.errors.records)
    yield helper
    new = otpsim_server.errors.records[seen:]
    if new:
        formatter = logging.Formatter("%(name)s: %(message)s")
        details = "\n".join(formatter.format(r) for r in new)
        if new[0].exc_info:
            details += "\n" + formatter.formatException(new[0].exc_info)
        pytest.fail(f"otpsim failed during this test:\n{details}", pytrace=False)
