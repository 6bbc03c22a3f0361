"""Drive otpsim from any test framework: unittest, behave, Robot Framework, Django's runner.

:class:`Controller` starts a simulator in this process (on 127.0.0.1, a free port, in
its own thread and event loop) or uses one already running (``url=``), and hands out an
:class:`Otpsim`: the same helpers the pytest fixture has (the pytest plugin is built on
this module). As a context manager::

    from otpsim.testing import Controller

    with Controller() as otpsim:
        app = MyApp(sms_api=otpsim.url, api_key="whatever-key-the-app-has")
        app.start_login("+33612345678")
        pin = otpsim.latest_pin("+33612345678")     # waits for the SMS; no sleep

or with ``start()`` / ``stop()``, and ``fresh()`` to begin each test clean::

    class LoginTest(unittest.TestCase):
        @classmethod
        def setUpClass(cls):
            cls.controller = Controller()
            cls.controller.start()
            cls.addClassCleanup(cls.controller.stop)

        def setUp(self):
            self.otpsim = self.controller.fresh()   # no OTPs, no SMS, clock as at start

**Accounts.** The simulator keeps each API key, and each OAuth client id, as its own
account. On a simulator the controller started itself the helpers see every account, so
they find what the application sent whatever key it was configured with; asked by OTP
id, they always look across accounts. On a shared simulator (``url=``) they see one
account, ``account=`` (default: ``api_key``): name it as the application authenticates,
by its API key or its OAuth client id. When nothing is found there but another account
received a matching SMS, :class:`~otpsim.client.NoMessage` says which, and how to fix it.

**Isolation on a shared simulator.** There ``use_scenario``, ``reset`` and ``fresh`` act
on that account only: its scenario applies to its own requests (replacing the global
one for it), ``advance`` moves that account's own clock (its OTPs expire, no one
else's), and a reset forgets both. On a simulator started here all of them act
globally.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from otpsim.client import AsyncClient, Client, Json, NoMessage, called_problem
from otpsim.config import Settings
from otpsim.errors import OtpsimError

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "Controller",
    "NoMessage",
    "Otpsim",
    "OtpsimAccountWarning",
    "SimulatorServer",
    "check_settings",
    "default_settings",
]

DEFAULT_API_KEY = "otpsim-test"
MAX_JOURNAL = 10_000  # journal entries a helper reads at most (the API's own limit)


class OtpsimAccountWarning(UserWarning):
    """On a shared simulator, a helper set up an account (a scenario, a clock jump) that
    made no provider request in the test, while another account did: the application
    probably authenticates as that other account (see the ``otpsim_account`` fixture)."""


def default_settings() -> Settings:
    """What an in-process simulator for tests runs with: a free port, quick callbacks."""
    return Settings(port=0, callback_batch_window=0.05, shutdown_grace=1.0)


def check_settings(settings: Settings, where: str = "Settings") -> None:
    """The checks ``otpsim serve`` gives a config file's values across fields (the OTP
    defaults follow the API's own rules; beyond loopback needs an admin token).

    Raises OtpsimError, one line: ``<where>: <field>: <what was expected>``."""
    from otpsim.config import _check

    try:
        _check(settings, {}, None)
    except OtpsimError as exc:
        # _check names a field it has no source for as "default <field>: ".
        raise OtpsimError(f"{where}: {str(exc).removeprefix('default ')}") from None


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
        self._app: web.Application | None = None
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

    def fresh(self) -> None:
        """What ``POST /_sim/reset`` then ``DELETE /_sim/scenario`` do, run on the
        server's loop without HTTP: the per-test reset of the pytest fixture (two
        requests cost ~3 ms of CPU a test, and would show in the server's metrics)."""
        if self._loop is None or self._app is None:
            raise RuntimeError("the otpsim server is not running")
        from otpsim.server.keys import SIM

        sim = self._app[SIM]

        async def reset() -> None:
            sim.reset(None)
            sim.use_scenario(None)
            await sim.wait_durable()

        asyncio.run_coroutine_threadsafe(reset(), self._loop).result(timeout=30)

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
        self._app = create_app(self.settings)
        runner = web.AppRunner(self._app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", self.settings.port)
            await site.start()
            self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()


def _called(entries: list[Json], path: str, **expected: Any) -> None:
    """``assert_called``'s check (both flavours): the journal ``entries`` (PINs as sent)
    show ``path`` called as ``expected``, else an AssertionError listing what was called,
    PINs shown (the helper runs in the user's own test: they compare what was sent)."""
    __tracebackhide__ = True
    problem = called_problem(entries, path, show_pins=True, **expected)
    if problem is not None:
        raise AssertionError(problem)


class _Async:
    """``otpsim.aio``: the helpers as coroutines (each call uses its own connection)."""

    def __init__(
        self, url: str, api_key: str, admin_token: str | None, account: str | None
    ) -> None:
        self._args = (url, api_key, admin_token, account)

    async def assert_called(
        self,
        path: str,
        *,
        method: str | None = None,
        status: int | str | None = None,
        times: int | None = None,
        body: Any = None,
    ) -> None:
        """:meth:`Otpsim.assert_called`, as a coroutine."""
        __tracebackhide__ = True
        url, api_key, admin_token, account = self._args
        async with AsyncClient(
            url, api_key=api_key, account=account, admin_token=admin_token
        ) as client:
            entries = await client.requests(limit=MAX_JOURNAL, pins=True)
        _called(entries, path, method=method, status=status, times=times, body=body)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        url, api_key, admin_token, account = self._args
        method = getattr(AsyncClient, name, None)
        if method is None or name.startswith("_"):
            raise AttributeError(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            async with AsyncClient(
                url, api_key=api_key, account=account, admin_token=admin_token
            ) as client:
                return await getattr(client, name)(*args, **kwargs)

        return call


class Otpsim:
    """One test's view of the simulator (the pytest ``otpsim`` fixture is one of these).

    ``account`` None: every account (a simulator of one's own); else only that account's
    messages, OTPs and callbacks (a shared simulator). Lookups by OTP id always look
    across accounts: an id names one OTP.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        admin_token: str | None = None,
        *,
        account: str | None = None,
    ) -> None:
        self.url = url
        self.api_key = api_key
        self.account = account
        self.client = Client(url, api_key=api_key, account=account, admin_token=admin_token)
        self.aio = _Async(url, api_key, admin_token, account)
        # What set this account up in this test ("use_scenario", "advance"), and the
        # journal's newest request id then: see :meth:`account_hint`.
        self.acted: list[str] = []
        self._since: str | None = None
        self._everyone = Client(url, admin_token=admin_token)

    def _acting(self, what: str) -> None:
        if self.account is None:
            return
        if not self.acted:
            try:
                newest = self._everyone.requests(limit=1)
            except (OtpsimError, OSError):
                newest = []
            self._since = str(newest[0]["id"]) if newest else None
        self.acted.append(what)

    def account_hint(self) -> str | None:
        """On a shared simulator: if this test set its account up (a scenario, a clock
        jump) but that account made no provider request since, while another account
        did, a sentence saying so (the application authenticates as that other account);
        else None. The pytest plugin warns with it at the end of a test."""
        if self.account is None or not self.acted:
            return None
        try:
            if self.client.requests(limit=1):
                return None
            others = self._everyone.requests(since=self._since, limit=1)
        except (OtpsimError, OSError):
            return None  # (a journal this client may not read: no hint)
        other = others[0].get("account") if others else None
        if other is None or other == self.account:
            return None
        what = " and ".join(dict.fromkeys(self.acted))
        return (
            f"{what} acted on account {self.account!r}, which made no provider request in "
            f"this test, while account {other!r} did: if the application authenticates as "
            f"{other!r}, return that from the otpsim_account fixture (a key per xdist "
            f"worker, the application configured with it: see the README)"
        )

    def latest_pin(
        self, phone: str | None = None, *, otp_id: str | None = None, timeout: float = 5.0
    ) -> str:
        """The PIN of the newest SMS to ``phone`` (or of ``otp_id``), waiting for it."""
        return self.client.latest_pin(phone, otp_id=otp_id, timeout=timeout)

    def latest_message(
        self, phone: str | None = None, *, otp_id: str | None = None, timeout: float = 5.0
    ) -> Json:
        """The newest delivered SMS to ``phone`` (or of ``otp_id``), waiting for it."""
        return self.client.wait_message(phone, otp_id=otp_id, timeout=timeout)

    def messages(self, phone: str | None = None) -> list[Json]:
        """SMS sent in this test, newest first."""
        return self.client.messages(phone)

    def otps(self, phone: str | None = None) -> list[Json]:
        return self.client.otps(phone)

    def advance(self, seconds: float) -> Json:
        """Move the simulator clock; expiries and callback retries in between happen.

        On a shared simulator (``account`` set): that account's own clock only."""
        self._acting("advance")
        return self.client.advance(seconds)

    def callbacks(self, otp_id: str | None = None) -> list[Json]:
        """Callback deliveries (with every attempt) of this test, or of one OTP."""
        return self.client.callbacks(otp_id)

    def use_scenario(self, scenario: str | Path | Mapping[str, Any]) -> Json:
        """Activate a scenario's network rules: a file path, YAML text or a mapping.

        On a shared simulator, for this account's requests only (until :meth:`reset`)."""
        self._acting("use_scenario")
        return self.client.use_scenario(scenario)

    def reset(self) -> None:
        """No OTPs or messages (on a shared simulator: of this account, whose own
        scenario and clock are forgotten too)."""
        self.client.reset()

    def requests(
        self,
        path: str | None = None,
        *,
        status: int | str | None = None,
        method: str | None = None,
        phone: str | None = None,
        otp_id: str | None = None,
        pins: bool = False,
    ) -> list[Json]:
        """Provider-API requests received in this test (refused ones too), newest first:
        ``requests(path="/otp", status=503)``. ``path`` is exact, or a prefix ending in
        ``*``; ``status`` a status or a class (``"4xx"``). PINs are masked unless
        ``pins=True``."""
        return self.client.requests(
            path, status=status, method=method, phone=phone, otp_id=otp_id, limit=MAX_JOURNAL,
            pins=pins,
        )  # fmt: skip

    def assert_called(
        self,
        path: str,
        *,
        method: str | None = None,
        status: int | str | None = None,
        times: int | None = None,
        body: Any = None,
    ) -> None:
        """Assert the application called ``path`` (exact, or a prefix ending in ``*``):
        at least once, or exactly ``times`` times (0: never), with this ``method``,
        answered with this ``status`` (``503``, ``"4xx"``), with a body containing
        ``body`` (a subset: only the keys given are compared; PINs as sent).

        The AssertionError lists what WAS called, the closest requests first, with the
        PINs as sent (the journal API masks them unless asked)."""
        __tracebackhide__ = True
        entries = self.client.requests(limit=MAX_JOURNAL, pins=True)
        _called(entries, path, method=method, status=status, times=times, body=body)


class Controller:
    """Starts (or attaches to) a simulator and hands out :class:`Otpsim` helpers.

    ``settings``: of the simulator started here (default :func:`default_settings`).
    ``url``: use the simulator already running there instead (a shared one).
    ``api_key``: the key the helpers' own provider calls use (``otpsim.api_key``).
    ``account``: which account the helpers see; default every account on a simulator
    started here, ``api_key`` on a shared one.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        url: str | None = None,
        api_key: str = DEFAULT_API_KEY,
        account: str | None = None,
        admin_token: str | None = None,
    ) -> None:
        if settings is not None and url is not None:
            raise ValueError("give settings (a simulator started here) or url (a running one)")
        if settings is not None:
            check_settings(settings)
        self.settings = settings or default_settings()
        self.external = url.rstrip("/") if url else None
        self.api_key = api_key
        self.admin_token = admin_token if self.external else self.settings.admin_token
        self.account = account if account is not None or not self.external else api_key
        self.server: SimulatorServer | None = None
        self._otpsim: Otpsim | None = None
        self._seen = 0

    @property
    def url(self) -> str:
        if self.external:
            return self.external
        if self.server is None:
            raise RuntimeError("the simulator is not started: call start() first")
        return self.server.url

    @property
    def otpsim(self) -> Otpsim:
        """The helpers (after :meth:`start`)."""
        if self._otpsim is None:
            raise RuntimeError("the simulator is not started: call start() first")
        return self._otpsim

    def start(self) -> Otpsim:
        """Start the simulator (or check the shared one answers); returns the helpers."""
        if self._otpsim is not None:
            return self._otpsim
        if self.external:
            Client(self.external, admin_token=self.admin_token).health()  # fail early
        else:
            self.server = SimulatorServer(self.settings)
            self.server.start()
        self._otpsim = Otpsim(self.url, self.api_key, self.admin_token, account=self.account)
        return self._otpsim

    def fresh(self, scenario: str | Path | Mapping[str, Any] | None = None) -> Otpsim:
        """A clean start for the next test; returns the helpers.

        A simulator of one's own is reset completely (clock included) and its scenario
        cleared; on a shared one only this account's OTPs, messages, callbacks and own
        scenario and clock go.
        ``scenario`` (a file, YAML text or a mapping) is then activated.
        """
        otpsim = self.start()
        otpsim.acted.clear()
        if self.external:
            otpsim.reset()
        elif self.server is not None:
            self.server.fresh()  # in-process, no HTTP
        else:
            owner = Client(self.url, admin_token=self.admin_token)
            owner.reset()
            owner.clear_scenario()
        if self.server is not None:
            self._seen = len(self.server.errors.records)
        if scenario is not None:
            otpsim.use_scenario(scenario)
        return otpsim

    def failures(self) -> str | None:
        """What the simulator logged as failures (500s it did not mean, with their
        tracebacks) since the last :meth:`fresh`; None if nothing (or a shared one)."""
        if self.server is None:
            return None
        new = self.server.errors.records[self._seen :]
        if not new:
            return None
        formatter = logging.Formatter("%(name)s: %(message)s")
        details = "\n".join(formatter.format(r) for r in new)
        if new[0].exc_info:
            details += "\n" + formatter.formatException(new[0].exc_info)
        return details

    def stop(self) -> None:
        """Stop a simulator started here (a shared one is left running)."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        self._otpsim = None

    def __enter__(self) -> Otpsim:
        self.start()
        return self.fresh()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
