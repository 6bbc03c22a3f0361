"""The ``otpsim`` command: ``serve`` the simulator, ``wait`` for one to be ready.

Every ``serve`` flag has an ``OTPSIM_*`` environment twin and a config-file key (see
``otpsim.config.OPTIONS``). Errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from otpsim import __version__
from otpsim.config import DEFAULT_PORT, OPTIONS, Settings, is_loopback, load_settings
from otpsim.errors import OtpsimError

if TYPE_CHECKING:
    from otpsim.scenario.model import Scenario

# Each command imports what it runs (the server, the scenario parser, asyncio, urllib)
# when it runs: `otpsim --help`, `otpsim tail` or `otpsim wait` need none of them
# (tests/test_cli.py checks that --help stays light).


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otpsim",
        description="A local SMS-gateway simulator: a fake OTP-over-SMS provider for tests.",
    )
    parser.add_argument("--version", action="version", version=f"otpsim {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the simulator",
        description="Run the simulator. Every flag can also be set as an OTPSIM_* "
        "environment variable (e.g. --rate-limit as OTPSIM_RATE_LIMIT) or in --config.",
    )
    serve.add_argument(
        "--config", metavar="FILE", help="YAML config file (env OTPSIM_CONFIG)", default=None
    )
    for option in OPTIONS:
        serve.add_argument(
            option.flag,
            dest=option.field,
            metavar=option.metavar,
            action="append" if option.repeatable else "store",
            default=None,
            help=f"{option.help} [env {option.env}]",
        )

    wait = commands.add_parser(
        "wait",
        help="wait until a simulator answers (for CI scripts)",
        description="Exit 0 as soon as URL/_sim/health answers 200; exit 1 on timeout.",
    )
    wait.add_argument(
        "url",
        nargs="?",
        default=None,
        help=f"base URL (default $OTPSIM_URL or http://127.0.0.1:{DEFAULT_PORT})",
    )
    wait.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")

    run = commands.add_parser(
        "run",
        help="run scenario files and check their expectations",
        description="Run each scenario against a fresh in-process simulator (or --target), "
        "print each step and a summary. Every file is checked first. Exit 0 if all passed, "
        "1 if any failed an expectation, 2 if any could not be carried out (target "
        "unreachable, a timeout, a step that crashed) or a file is malformed.",
    )
    run.add_argument(
        "paths",
        nargs="*",
        metavar="FILE_OR_DIR",
        help="scenario files or folders; builtin:NAME for a shipped one",
    )
    run.add_argument("--builtin", action="store_true", help="every shipped scenario")
    run.add_argument("--target", default=None, metavar="URL", help="a running simulator")
    run.add_argument("--junit", default=None, metavar="FILE", help="write a JUnit XML report")
    run.add_argument("--api-key", default=None, help="API key for the provider API")
    run.add_argument(
        "--admin-token", default=None, help="the target's admin token [env OTPSIM_ADMIN_TOKEN]"
    )

    validate = commands.add_parser(
        "validate",
        help="check scenario files without running them",
        description="Check scenario files without running them: every problem of every "
        "file, one line each (file:line: ...), then a count; exit 2 if any.",
    )
    validate.add_argument("paths", nargs="*", metavar="FILE_OR_DIR")
    validate.add_argument("--builtin", action="store_true", help="every shipped scenario")

    shipped = commands.add_parser(
        "scenarios",
        help="the ready-made scenarios shipped with otpsim",
        description="List the shipped scenarios (run one with `otpsim run builtin:NAME`), "
        "or copy them into a folder to start your own.",
    )
    shipped_commands = shipped.add_subparsers(dest="scenarios_command", metavar="ACTION")
    shipped_commands.required = True
    shipped_commands.add_parser("list", help="name and describe each shipped scenario")
    copy = shipped_commands.add_parser("copy", help="copy them into DIR (made if missing)")
    copy.add_argument("dir", metavar="DIR")
    copy.add_argument("--force", action="store_true", help="overwrite files already there")

    tail = commands.add_parser(
        "tail",
        help="follow the live feed in a terminal: one line per SMS",
        description="Print each SMS as it is delivered (PIN highlighted) and each final OTP "
        "status, until Ctrl-C. Reconnects by itself after a drop, for --retry-for seconds; "
        "then ends with one error line and exit code 1.",
    )
    tail.add_argument(
        "--url",
        default=None,
        help=f"simulator base URL (default $OTPSIM_URL or http://127.0.0.1:{DEFAULT_PORT})",
    )
    tail.add_argument("--phone", default=None, metavar="NUMBER", help="only this phone number")
    tail.add_argument(
        "--retry-for", type=_retry_for, default=10.0, metavar="S",
        help="after a drop, try to reconnect for S seconds, then end with exit code 1 "
        "(default 10; 0: no retry, and a simulator that stops ends tail at once, code 0)",
    )  # fmt: skip
    tail.add_argument(
        "--admin-token", default=None, help="the simulator's admin token [env OTPSIM_ADMIN_TOKEN]"
    )
    tail.add_argument(
        "--color", action=argparse.BooleanOptionalAction, default=None,
        help="highlight PINs (default: when writing to a terminal and NO_COLOR is unset)",
    )  # fmt: skip
    return parser


def _cli_values(args: argparse.Namespace) -> dict[str, Any]:
    """Parse the flags the user gave with the same parsers as env and config values."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw = getattr(args, option.field)
        if raw is None:
            continue
        try:
            values[option.field] = option.parse(raw)
        except ValueError as exc:
            raise OtpsimError(f"{option.flag}: {exc}") from None
    return values


def json_record(msg: str, level: str = "info", **fields: Any) -> str:
    """One line as ``--log-format json`` writes it (``ts``, ``level``, ``logger``, ``msg``
    and the fields), for what the command itself prints."""
    import logging

    from otpsim import logs

    record = logging.makeLogRecord(
        {
            "name": "otpsim",
            "levelname": level.upper(),
            "levelno": logging.getLevelName(level.upper()),
            "msg": msg,
            "fields": {k: v for k, v in fields.items() if v is not None},
        }
    )
    return logs.JsonFormatter().format(record)


class StdoutClosed(Exception):
    """Whoever read our output has gone (``otpsim run ... | head -1``).

    Not an OSError, so that no ``except OSError`` on the way (a network error handler)
    mistakes it for a problem with the simulator."""


def _say(text: str) -> None:
    try:
        print(text, flush=True)
    except BrokenPipeError:
        raise StdoutClosed from None


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def serve(settings: Settings, *, out: Any = None) -> None:
    """Run until SIGINT or SIGTERM; print where the API and the inbox are."""
    import asyncio

    from aiohttp import web

    from otpsim.clock import iso
    from otpsim.server.app import create_app
    from otpsim.server.callbacks import points_at_self
    from otpsim.server.edge import EdgeRunner, connection_cap, raise_fd_limit
    from otpsim.server.keys import SIM, STREAMS

    out = out or sys.stdout
    app = create_app(settings)
    sim = app[SIM]
    recovery = sim.recover()  # done by create_app: what it found
    if settings.scenario:
        from otpsim.scenario.model import load_scenario  # yaml, jinja2: not otherwise needed

        scenario = load_scenario(settings.scenario)
        sim.use_scenario(scenario.network, name=scenario.name, keep_clock=recovery.clock_restored)
    fd_limit = raise_fd_limit()
    cap = connection_cap(settings, fd_limit)
    app[STREAMS].bound_by(cap)  # streams never hold every connection
    runner = EdgeRunner(
        app, settings, cap=cap, handle_signals=False, access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )  # fmt: skip
    await runner.setup()
    # Signals are handled before the address is printed: whoever reads it may stop the
    # server at once, and that must still be a clean stop.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as exc:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        raise OtpsimError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from None
    port = runner.addresses[0][1]
    if settings.callback_url and points_at_self(
        settings.callback_url, {int(a[1]) for a in runner.addresses}
    ):
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        raise OtpsimError(
            f"--callback-url: {settings.callback_url} points at the simulator itself "
            "(callbacks cannot drive the simulator; expected the URL of your application)"
        )
    base = _url(settings.host, port)
    warning = exposure_warning(settings, port)
    if warning:  # whatever the log level
        line = json_record(warning, "warning") if settings.log_format == "json" else warning
        print(line, file=sys.stderr, flush=True)
    auth = "strict (configured credentials only)" if settings.strict_auth else "any non-empty key"
    clock = iso(recovery.clock) if recovery.clock_restored else None
    if settings.log_format == "json":  # every line JSON: the banner is one record
        print(
            json_record(
                f"otpsim {__version__}: a fake SMS provider is listening",
                version=__version__, api=base, inbox=f"{base}/", control=f"{base}/_sim/",
                auth=auth, connection_cap=cap, scenario=settings.scenario,
                clock_restored_from=clock and settings.db, clock=clock,
            ),
            file=out, flush=True,
        )  # fmt: skip
    else:
        print(f"otpsim {__version__}: a fake SMS provider is listening", file=out)
        print(f"  API:     {base}", file=out)
        print(f"  Inbox:   {base}/", file=out)
        print(f"  Control: {base}/_sim/", file=out)
        print(f"  Auth:    {auth}", file=out)
        if cap < settings.max_connections:
            print(f"  Limits:  {cap} connections (open-file limit {fd_limit})", file=out)
        if settings.scenario:
            print(f"  Network: scenario {settings.scenario}", file=out)
        if clock is not None:
            print(f"  Clock:   {clock}, as it was saved in {settings.db}", file=out)
        print("Press Ctrl-C to stop.", file=out, flush=True)
    from otpsim.gcpolicy import collect_garbage_on_schedule

    collector = asyncio.create_task(collect_garbage_on_schedule(), name="gc")
    try:
        await stop.wait()
    finally:
        collector.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        stopped = "otpsim: stopped"
        if settings.log_format == "json":
            stopped = json_record(stopped)
        print(stopped, file=out, flush=True)


def exposure_warning(settings: Settings, port: int) -> str | None:
    """The loud line ``--insecure-open`` is announced with, when it opens anything."""
    if settings.admin_token or not settings.insecure_open or is_loopback(settings.host):
        return None
    return (
        f"otpsim: WARNING: --insecure-open: {settings.host}:{port} has no admin token: "
        "anyone who reaches this port reads every PIN and controls the simulator. "
        "Use it only for a throwaway CI container; set --admin-token otherwise."
    )


# Seconds requests still in flight get when the server stops (after long polls have
# answered and websockets closed); aiohttp's default of 60 s held a container's stop.
SHUTDOWN_TIMEOUT = 1.0


def wait_ready(url: str, timeout: float) -> str:
    """Poll ``url/_sim/health`` until it answers 200; returns the simulator's version."""
    import urllib.error
    import urllib.request

    health = url.rstrip("/") + "/_sim/health"
    give_up = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        try:
            with urllib.request.urlopen(health, timeout=2) as response:
                if response.status == 200:
                    return str(json.load(response).get("version", "?"))
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            last = str(reason)
        if time.monotonic() >= give_up:
            raise TimeoutError(f"{health} did not answer within {timeout:g}s (last: {last})")
        time.sleep(0.1)


def _check_all(paths: list[str]) -> tuple[list[tuple[Scenario, str]], list[str]]:
    """Every good scenario of ``paths`` with its text, and the problems of the bad ones
    (every problem of each file, ``file:line: ...``; then, if more than one, a count)."""
    from pathlib import Path

    from otpsim.scenario.model import ScenarioInvalid, load_scenario, scenario_files

    loaded, problems, bad, count = [], [], 0, 0
    named = 0  # scenario files the paths name
    for given in paths:
        try:  # a missing path is one more problem: the other files are still checked
            files = scenario_files([given])
        except OtpsimError as exc:
            if Path(given).is_dir():  # a directory with no scenario: fine beside others
                continue
            problems.append(str(exc))
            count += 1
            bad += 1
            continue
        named += len(files)
        for path in files:
            try:
                loaded.append((load_scenario(path), path.read_text(encoding="utf-8")))
            except OtpsimError as exc:
                lines = str(exc).splitlines()
                problems.extend(lines)
                count += exc.count if isinstance(exc, ScenarioInvalid) else len(lines)
                bad += 1
    if not named and not problems:
        scenario_files(paths)  # raises: no scenario files in ...
    if count > 1:
        problems.append(f"{count} problems in {bad} file{'s' if bad > 1 else ''}")
    return loaded, problems


def _load_all(paths: list[str]) -> list[tuple[Scenario, str]]:
    """Every scenario of ``paths`` with its text; OtpsimError listing every problem."""
    loaded, problems = _check_all(paths)
    if len(problems) > 1:  # the last is the count
        problems[-1] += " (nothing was run)"
    if problems:
        raise OtpsimError("\n".join(problems))
    return loaded


def _validate(paths: list[str]) -> int:
    loaded, problems = _check_all(paths)
    for scenario, _ in loaded:
        half = [f"{len(scenario.steps)} steps"] if scenario.steps else []
        if scenario.network is not None:
            half.append(f"a network with {len(scenario.network.carrier.rules)} rule(s)")
        print(f"ok: {scenario.path} ({', '.join(half)})")
    if problems:
        raise OtpsimError("\n".join(problems))
    return 0


def _admin(args: argparse.Namespace) -> str | None:
    return args.admin_token or os.environ.get("OTPSIM_ADMIN_TOKEN") or None


def _run(
    paths: list[str],
    target: str | None,
    junit: str | None,
    api_key: str | None,
    admin_token: str | None = None,
) -> int:
    """Exit 0: every scenario passed; 1: some failed (an answer was not as expected);
    2: some errored (could not be carried out), or a file is malformed (nothing runs).
    A target nothing answers at is said once, and stops the run."""
    import asyncio

    from otpsim.scenario import report
    from otpsim.scenario.runner import ScenarioResult, run_scenario, unreachable

    loaded = _load_all(paths)  # nothing runs unless every file is valid
    if target is not None:
        target = _base_url(target, "run")
    down: str | None = None  # why the target cannot be reached

    async def run_all() -> list[ScenarioResult]:
        nonlocal down
        results: list[ScenarioResult] = []
        if target is not None:
            down = await unreachable(target)
            if down is not None:
                return results
        for scenario, source in loaded:
            _say(report.header_of(scenario))
            result = await run_scenario(
                scenario,
                source,
                target=target,
                api_key=api_key,
                admin_token=admin_token,
                progress=lambda step: _say(report.step_line(step)),
            )
            _say(report.footer(result))
            results.append(result)
            if result.unreachable is not None:
                down = result.unreachable
                break
        return results

    results = asyncio.run(run_all())
    ran = len(results)
    if down is not None:
        stop = f"cannot reach the target {target}: {down}"
        results += [ScenarioResult(s, error=f"not run: {stop}") for s, _ in loaded[ran:]]
    if junit:
        report.write_junit(results, junit)
    if ran:
        _say(report.summary(results))
    if down is not None:
        left = len(loaded) - ran
        raise OtpsimError(f"{stop} ({left} scenario{'' if left == 1 else 's'} not run)")
    if any(r.errored for r in results):
        return 2
    return 0 if all(r.ok for r in results) else 1


def _base_url(given: str | None, command: str) -> str:
    url = given or os.environ.get("OTPSIM_URL") or _url("127.0.0.1", DEFAULT_PORT)
    if not url.startswith(("http://", "https://")):
        raise OtpsimError(f"{command}: expected an http:// URL, got {url!r}")
    return url


def _scenario_paths(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The FILE_OR_DIR arguments of ``run``/``validate``, with ``--builtin`` as ``builtin:``."""
    from otpsim.scenario import builtin

    paths = list(args.paths) + ([builtin.PREFIX] if args.builtin else [])
    if not paths:
        parser.error(f"{args.command}: expected FILE_OR_DIR... (or --builtin)")
    return paths


def _scenarios(args: argparse.Namespace) -> int:
    from otpsim.scenario import builtin
    from otpsim.scenario.model import load_scenario

    if args.scenarios_command == "list":
        for path in builtin.paths():
            scenario = load_scenario(path)
            print(f"{builtin.PREFIX}{path.stem:<20} {scenario.description}".rstrip())
        return 0
    copied = builtin.copy_to(args.dir, force=args.force)
    print(f"copied {len(copied)} scenarios into {args.dir} (run them: otpsim run {args.dir})")
    return 0


SIGPIPE_EXIT = 128 + signal.SIGPIPE  # 141: what a shell shows for a reader that left


def main(argv: Sequence[str] | None = None) -> int:
    """The ``otpsim`` command. Bare ``otpsim`` prints the help and exits 2 (a usage
    error, as argparse reports a missing command); a closed stdout ends it quietly
    with 141, as SIGPIPE would."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command in ("run", "validate"):
        args.paths = _scenario_paths(parser, args)
    try:
        return _command(args)
    except (BrokenPipeError, StdoutClosed):
        _drop_stdout()
        return SIGPIPE_EXIT


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (captured)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _json_mode(args: argparse.Namespace) -> bool:
    """Whether ``--log-format json`` (or OTPSIM_LOG_FORMAT=json) was asked for."""
    given = getattr(args, "log_format", None) or os.environ.get("OTPSIM_LOG_FORMAT") or ""
    return given.strip().lower() == "json"


def _retry_for(text: str) -> float:
    """``--retry-for``: seconds, from 0 to a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seconds from 0 to 86400, got {text!r}"
        ) from None
    if not 0 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to 86400, got {text!r}")
    return value


def _command(args: argparse.Namespace) -> int:
    try:
        if args.command == "scenarios":
            return _scenarios(args)
        if args.command == "validate":
            return _validate(args.paths)
        if args.command == "run":
            return _run(args.paths, args.target, args.junit, args.api_key, _admin(args))
        if args.command == "tail":
            from otpsim import tail

            url = _base_url(args.url, "tail")
            return tail.run(url, args.phone, args.color, _admin(args), args.retry_for)
        if args.command == "wait":
            url = _base_url(args.url, "wait")
            try:
                version = wait_ready(url, args.timeout)
            except TimeoutError as exc:
                print(f"otpsim: not ready: {exc}", file=sys.stderr)
                return 1
            print(f"otpsim {version} is ready at {url}")
            return 0
        settings = load_settings(cli=_cli_values(args), config_path=args.config)
        from otpsim import logs

        logs.configure(settings.log_level, settings.log_format)
        import asyncio

        asyncio.run(serve(settings))
        return 0
    except OtpsimError as exc:
        for line in str(exc).splitlines():
            if _json_mode(args):
                print(json_record(line, "error"), file=sys.stderr)
            else:
                print(f"otpsim: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0 if args.command == "tail" else 130
