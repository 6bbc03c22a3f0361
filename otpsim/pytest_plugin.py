"""The otpsim pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:

* ``otpsim``: the simulator for one test, clean at its start. ``otpsim.url`` is the base
  URL to give the code under test; helpers wait instead of sleeping::

      def test_login_sends_a_code(otpsim, app):
          app.start_login(phone="+33612345678", sms_api=otpsim.url, api_key="app-key")
          pin = otpsim.latest_pin("+33612345678", timeout=5)
          assert app.finish_login(pin)

  ``otpsim.aio`` has the same helpers as coroutines, for async tests. On the session's
  own simulator the helpers see every account, so whatever key (or OAuth client) the
  application is configured with, they find what it sent.
* ``otpsim_server`` (session): the :class:`otpsim.testing.Controller` of this session:
  one simulator per test session (per xdist worker), started in-process on 127.0.0.1 on
  a free port, or the one at ``$OTPSIM_URL``.
* ``otpsim_settings`` (session): the in-process simulator's Settings; override it in a
  conftest.py to change defaults or credentials.
* ``otpsim_api_key`` (session): the API key of the helpers' own provider calls; each
  xdist worker gets its own.
* ``otpsim_account`` (session): the account the helpers look at: None (every account)
  on the session's own simulator; on a shared one (``$OTPSIM_URL``) ``otpsim_api_key``.
  Override it to return the API key, or OAuth client id, the application authenticates
  with: on a shared simulator one per xdist worker (``f"myapp-{worker_id}"``, the
  application configured with it). When a test's scenario or clock jump went to an
  account that made no provider request while another account did, the test ends
  with an ``OtpsimAccountWarning`` saying so.

The marker ``@pytest.mark.otpsim(scenario=..., settings=...)`` sets one test up: a
scenario (a file, relative to the test file or else the current directory, YAML text or
a mapping) active from its
start; settings (a Settings, or a mapping of Settings fields over ``otpsim_settings``)
for a simulator of its own, started for that test only.

An unexpected failure inside an in-process simulator (a 500 it did not mean to answer)
fails the test during which it happened, with the simulator's traceback.

This module is imported by every pytest run where otpsim is installed, so it imports
nothing heavy itself: the simulator is imported when a test first asks for it.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from otpsim.config import Settings
    from otpsim.testing import Controller, Otpsim

MARKER = "otpsim"
MARKER_HELP = (
    "otpsim(scenario=None, settings=None): set up the otpsim fixture for this test: "
    "a scenario (file path, YAML text or mapping) active from its start, and/or "
    "settings (Settings, or a mapping of Settings fields) for a simulator of its own"
)


def __getattr__(name: str) -> Any:
    """``Otpsim`` and ``SimulatorServer`` now live in :mod:`otpsim.testing`."""
    if name in ("Otpsim", "SimulatorServer", "Controller"):
        import otpsim.testing

        return getattr(otpsim.testing, name)
    raise AttributeError(name)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)


def _worker(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else "main"


@pytest.fixture(scope="session")
def otpsim_settings() -> Settings:
    """Settings of the in-process simulator; override to change defaults or credentials."""
    from otpsim.testing import default_settings

    return default_settings()


@pytest.fixture(scope="session")
def otpsim_api_key(request: pytest.FixtureRequest) -> str:
    """The API key of the helpers' own provider calls; one per xdist worker."""
    return f"pytest-{_worker(request.config)}"


@pytest.fixture(scope="session")
def otpsim_account(otpsim_api_key: str) -> str | None:
    """The account the helpers see: None (every account) on the session's own simulator;
    on a shared one (``$OTPSIM_URL``), ``otpsim_api_key``. Override it to name the account
    the application authenticates as: its API key, or its OAuth client id."""
    return otpsim_api_key if os.environ.get("OTPSIM_URL") else None


@pytest.fixture(scope="session")
def otpsim_server(
    otpsim_settings: Settings, otpsim_api_key: str, otpsim_account: str | None
) -> Iterator[Controller]:
    """The simulator of this session: an in-process one, or the one at $OTPSIM_URL."""
    from otpsim.testing import Controller

    external = os.environ.get("OTPSIM_URL")
    if external:
        controller = Controller(
            url=external,
            api_key=otpsim_api_key,
            account=otpsim_account,
            admin_token=os.environ.get("OTPSIM_ADMIN_TOKEN"),
        )
    else:
        controller = Controller(otpsim_settings, api_key=otpsim_api_key, account=otpsim_account)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def _marker_args(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The ``@pytest.mark.otpsim`` arguments of this test (closest marker wins)."""
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return {}
    unknown = sorted(set(marker.kwargs) - {"scenario", "settings"})
    if marker.args or unknown:
        given = ", ".join([*(repr(a) for a in marker.args), *unknown])
        pytest.fail(
            f"@pytest.mark.otpsim takes scenario= and settings= only; got {given}",
            pytrace=False,
        )
    return dict(marker.kwargs)


def _scenario(value: Any, request: pytest.FixtureRequest) -> Any:
    """A scenario path relative to the test file, if it names a file there, else to the
    current directory; neither: the test errors, naming both paths tried."""
    if isinstance(value, Path) or (
        isinstance(value, str) and "\n" not in value and value.endswith((".yaml", ".yml", ".json"))
    ):
        beside = Path(request.node.path).parent / value
        here = Path(value).absolute()
        for path in (beside, here):
            if path.is_file():
                return path
        tried = f"{beside} (beside the test file)"
        if here != beside:
            tried += f" and {here} (the current directory)"
        pytest.fail(
            f"@pytest.mark.otpsim(scenario={value!r}): no such file; looked for {tried}",
            pytrace=False,
        )
    return value


def _own_settings(value: Any, request: pytest.FixtureRequest) -> Settings:
    """The marker's settings: a Settings, or a mapping of fields over ``otpsim_settings``
    whose values are parsed and checked as a config file's are (``fixed_pins:
    ["+33612345678=123456"]``, ``api_keys: ["key"]``, ...)."""
    from otpsim.config import OPTIONS, Settings
    from otpsim.errors import OtpsimError
    from otpsim.testing import check_settings

    where = "@pytest.mark.otpsim(settings=...)"
    if isinstance(value, Settings):
        settings = value
    elif isinstance(value, Mapping):
        options = {o.field: o for o in OPTIONS}
        unknown = sorted(set(value) - set(options))
        if unknown:
            pytest.fail(f"{where}: unknown Settings field(s) {', '.join(unknown)}", pytrace=False)
        parsed: dict[str, Any] = {}
        for name, raw in value.items():
            try:
                parsed[name] = options[name].parse(list(raw) if isinstance(raw, tuple) else raw)
            except ValueError as exc:
                pytest.fail(f"{where}: {name}: {exc}", pytrace=False)
        base: Settings = request.getfixturevalue("otpsim_settings")
        settings = dataclasses.replace(base, **parsed)
    else:
        pytest.fail(
            f"{where} expects Settings or a mapping of its fields, got {type(value).__name__}",
            pytrace=False,
        )
    try:
        check_settings(settings, where)
    except OtpsimError as exc:
        pytest.fail(str(exc), pytrace=False)
    return settings


@pytest.fixture
def otpsim(request: pytest.FixtureRequest) -> Iterator[Otpsim]:
    """The simulator, clean for this test (see the module docstring)."""
    args = _marker_args(request)
    scenario = _scenario(args["scenario"], request) if "scenario" in args else None
    own = None
    if "settings" in args:
        if os.environ.get("OTPSIM_URL"):
            pytest.skip(
                "@pytest.mark.otpsim(settings=...) needs a simulator of its own; "
                "OTPSIM_URL names a shared one"
            )
        from otpsim.testing import Controller

        settings = _own_settings(args["settings"], request)
        own = Controller(
            settings,
            api_key=request.getfixturevalue("otpsim_api_key"),
            account=request.getfixturevalue("otpsim_account"),
        )
    controller: Controller = own or request.getfixturevalue("otpsim_server")
    try:
        helpers = controller.fresh(scenario)
        if scenario is not None and helpers.acted:
            helpers.acted[:] = ["@pytest.mark.otpsim(scenario=...)"]
        yield helpers
        failures = controller.failures()
        if failures:
            pytest.fail(f"otpsim failed during this test:\n{failures}", pytrace=False)
        hint = helpers.account_hint()
        if hint is not None:
            from otpsim.testing import OtpsimAccountWarning

            warnings.warn(OtpsimAccountWarning(hint), stacklevel=1)
    finally:
        if own is not None:
            own.stop()
