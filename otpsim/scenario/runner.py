"""``otpsim run``: replay a scenario's steps over HTTP and check every expectation.

Each scenario runs against a fresh in-process simulator on 127.0.0.1 (or, with
``target``, a running one, which is reset first). The scenario's ``network`` is
activated with ``PUT /_sim/scenario`` either way, so both paths are the same HTTP calls.
A built-in callback receiver (``{{ callback_url }}``) records every callback.

The first failing step ends its scenario (later steps depend on earlier ones); the
result says what was expected and what came back. A scenario *fails* when an answer is
not what it expects; it *errors* when it could not be carried out: the simulator could
not be reached or did not answer in time, or a step crashed (a template that renders to
the wrong type, say). Reports keep the two apart (``otpsim run`` exits 1 or 2).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
from aiohttp import web

from otpsim.client import (
    ApiError,
    AsyncClient,
    Call,
    called_problem,
    matching_calls,
    subset_mismatch,
)
from otpsim.config import Settings
from otpsim.errors import OtpsimError
from otpsim.scenario.model import Scenario, Step, check_rendered
from otpsim.scenario.templates import render
from otpsim.server.app import create_app


@dataclass
class StepResult:
    step: Step
    ok: bool | None  # None: not run (an earlier step failed or crashed)
    detail: str
    seconds: float = 0.0
    crashed: bool = False  # not ok because it could not be carried out (an error)


@dataclass
class ScenarioResult:
    scenario: Scenario
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None  # the run itself could not go on (setup, connection)
    unreachable: str | None = None  # ...because nothing answers at its address: why

    @property
    def ok(self) -> bool:
        return self.error is None and all(s.ok for s in self.steps)

    @property
    def errored(self) -> bool:
        """Not carried out to the end: an error, not an expectation that failed."""
        return self.error is not None or any(s.crashed for s in self.steps)

    @property
    def failure(self) -> str | None:
        """What went wrong first (an error or a failure), or None."""
        if self.error is not None and not any(s.ok is False for s in self.steps):
            return self.error
        for result in self.steps:
            if result.ok is False:
                return f"step {result.step.index} {result.step.title}: {result.detail}"
        return self.error


class StepFailed(Exception):
    pass


# -- values and comparisons --------------------------------------------------------------


# The first difference (``where: expected X, got Y``); mappings compare as subsets: the
# same comparison as assert_called's ``body=`` (one definition, in client.py).
mismatch = subset_mismatch


def _describe(status: int, body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return f"{status} {err.get('type')} {err.get('code')}: {err.get('message')}"
    return str(status)


def check(step: Step, status: int | None, body: Any, context: Mapping[str, Any]) -> str:
    """Raise StepFailed unless the answer meets the step's expectations; else a summary.

    Expected values may reference earlier results (``{{ otp.otpId }}``).
    """
    expect = replace(
        step.expect,
        error=render(step.expect.error, context),
        body=render(step.expect.body, context),
    )
    if status is not None:
        if expect.wants_success and not 200 <= status < 300:
            raise StepFailed(f"expected success, got {_describe(status, body)}")
        if expect.status is not None and status != expect.status:
            raise StepFailed(f"status: expected {expect.status}, got {_describe(status, body)}")
        if expect.error is not None:
            error = body.get("error") if isinstance(body, dict) else None
            if error is None:
                raise StepFailed(f"expected an error, got {_describe(status, body)}")
            found = mismatch(expect.error, error, "error")
            if found:
                raise StepFailed(found)
    if expect.body is not None:
        found = mismatch(expect.body, body)
        if found:
            raise StepFailed(found)
    if status is not None:
        return _describe(status, body)
    if isinstance(body, dict) and "requests" in body:
        return f"{body['count']} matching request(s) journaled"
    if isinstance(body, dict) and "count" in body:
        return f"{body['count']} callback item(s) received"
    return "done"


# -- the built-in callback receiver --------------------------------------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 that records callbacks; answers from a script, then 200."""

    def __init__(self, responses: tuple[int, ...] = ()) -> None:
        self.responses = list(responses)
        self.items: list[dict[str, Any]] = []
        self.requests = 0
        self.url = ""
        self._arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        try:
            payload = await request.json()
            data = payload.get("data", []) if isinstance(payload, dict) else []
        except ValueError:
            data = []
        status = self.responses.pop(0) if self.responses else 200
        for item in data if isinstance(data, list) else []:
            if isinstance(item, dict):
                self.items.append({**item, "_answered": status})
        self._arrived.set()
        return web.Response(status=status)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/callbacks", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/callbacks"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def matching(self, otp_id: Any, status: Any) -> list[dict[str, Any]]:
        return [
            item
            for item in self.items
            if (otp_id is None or item.get("otpId") == otp_id)
            and (status is None or item.get("status") == status)
        ]

    async def wait_for(self, otp_id: Any, status: Any, count: int, within: float) -> bool:
        deadline = time.monotonic() + within
        while len(self.matching(otp_id, status)) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout=left)
            except TimeoutError:
                return False
        return True


# -- running -----------------------------------------------------------------------------


class _Run:
    def __init__(self, scenario: Scenario, client: AsyncClient, receiver: Receiver) -> None:
        self.scenario = scenario
        self.client = client
        self.calls = client.calls
        self.receiver = receiver
        self.context: dict[str, Any] = {"callback_url": receiver.url, "target": client.base_url}

    async def call(self, call: Call, headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
        response = await self.client.request(call, headers=headers)
        return response.status, response.body

    async def step(self, step: Step) -> tuple[int | None, Any]:
        args = check_rendered(self.scenario.path, step, render(step.args, self.context))
        kind, calls = step.kind, self.calls
        simple: dict[str, Callable[[], Call]] = {
            "create": lambda: calls.create_otp(args),
            "get": lambda: calls.get_otp(str(args["otpId"])),
            "verify": lambda: calls.verify(str(args["otpId"]), args["pin"]),
            "cancel": lambda: calls.cancel(str(args["otpId"])),
            "latest": lambda: calls.latest_message(
                args.get("phoneNumber"), args.get("otpId"), float(args.get("wait") or 0)
            ),
            "messages": lambda: replace(
                calls.messages(args.get("phoneNumber"), args.get("otpId"), None), pick=None
            ),
            "advance": lambda: calls.move_clock(advance=float(args)),
            "set_clock": lambda: calls.move_clock(set=str(args)),
            "reset": calls.reset,
        }
        if kind in simple:
            return await self.call(simple[kind]())
        if kind == "wait":
            await asyncio.sleep(float(args))
            return None, None
        if kind == "request":
            extra = {k: str(v) for k, v in (args.get("headers") or {}).items()}
            call = Call(
                str(args["method"]).upper(), str(args["path"]), json=args.get("body"), provider=True
            )
            return await self.call(call, extra)
        if kind == "expect_callback":
            return await self.expect_callback(args)
        if kind == "expect_request":
            return await self.expect_request(args)
        raise StepFailed(f"unknown step kind {kind!r}")

    async def expect_callback(self, args: Mapping[str, Any]) -> tuple[int | None, Any]:
        otp_id, status = args.get("otpId"), args.get("status")
        count = int(_given(args, "count", 1))
        within = float(_given(args, "within", 5))
        if not await self.receiver.wait_for(otp_id, status, count, within):
            got = [(i.get("otpId"), i.get("status")) for i in self.receiver.items]
            raise StepFailed(
                f"expected {count} callback(s) for otpId={otp_id} status={status} within "
                f"{within:g}s; received {len(got)}: {got[-5:]}"
            )
        found = self.receiver.matching(otp_id, status)
        return None, {"count": len(found), "last": found[-1], "items": found}

    async def expect_request(self, args: Mapping[str, Any]) -> tuple[int | None, Any]:
        """The request journal shows ``path`` called as expected (``times``: exactly,
        else at least once), waiting up to ``within`` seconds for it."""
        path = str(args["path"])
        method = None if args.get("method") is None else str(args["method"])
        status, body = args.get("status"), args.get("body")
        times = None if args.get("times") is None else int(args["times"])
        deadline = time.monotonic() + float(_given(args, "within", 0))
        phone, otp_id = args.get("phoneNumber"), args.get("otpId")
        while True:
            entries = await self.client.requests(
                phone=None if phone is None else str(phone),
                otp_id=None if otp_id is None else str(otp_id),
                limit=10_000,
                pins=True,
            )
            problem = called_problem(
                entries, path, method=method, status=status, times=times, body=body,
                show_pins=_compares_pin(body),
            )  # fmt: skip
            if problem is None or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        if problem is not None:
            raise StepFailed(problem)
        found = matching_calls(entries, path, method=method, status=status, body=body)
        return None, {"count": len(found), "last": found[0] if found else None, "requests": found}


def _compares_pin(body: Any) -> bool:
    """An ``expect_request`` body that compares a PIN: its failure shows the PINs sent
    (the compared field, else masked as everywhere)."""
    return isinstance(body, Mapping) and "pin" in body


def _given(args: Mapping[str, Any], key: str, default: float) -> Any:
    """An optional field's value; absent or null: ``default``."""
    value = args.get(key)
    return default if value is None else value


async def _start_local() -> tuple[web.AppRunner, str]:
    settings = Settings(port=0, callback_batch_window=0.05, shutdown_grace=0.5)
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def run_scenario(
    scenario: Scenario,
    source: str,
    *,
    target: str | None = None,
    api_key: str | None = None,
    admin_token: str | None = None,
    progress: Callable[[StepResult], None] | None = None,
) -> ScenarioResult:
    """Run one scenario; ``source`` is its text (sent to activate its network)."""
    if api_key is not None:
        scenario = replace(scenario, api_key=api_key)
    result = ScenarioResult(scenario)
    started = time.monotonic()
    receiver = Receiver(scenario.receiver_responses)
    await receiver.start()
    local: web.AppRunner | None = None
    try:
        if target is None:
            local, base = await _start_local()
        else:
            base = target
        async with AsyncClient(
            base, api_key=scenario.api_key, admin_token=admin_token, timeout=180
        ) as client:
            run = _Run(scenario, client, receiver)
            await _prepare(run, source)
            try:
                await _steps(run, result, progress)
            finally:
                if target is not None and scenario.network is not None:
                    await run.call(run.calls.clear_scenario())
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        where = target or "the local server"
        result.error = f"cannot talk to the simulator at {where}: {_reason(exc)}"
        if isinstance(exc, aiohttp.ClientConnectorError | ConnectionError):
            result.unreachable = _reason(exc)
    finally:
        if local is not None:
            await local.cleanup()
        await receiver.close()
        result.seconds = time.monotonic() - started
    return result


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):  # its message is empty
        return "no answer in time"
    return str(exc) or type(exc).__name__


async def unreachable(target: str, seconds: float = 10.0) -> str | None:
    """Why nothing answers at ``target`` (``GET /_sim/health``: any HTTP answer will do),
    or None; so that a run against a target that is down says so once."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session,
            session.get(target.rstrip("/") + "/_sim/health") as response,
        ):
            await response.read()
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return _reason(exc)
    return None


async def _prepare(run: _Run, source: str) -> None:
    """A clean simulator, with the scenario's network active."""
    try:
        await run.client.reset()
        if run.scenario.network is not None:
            await run.client.use_scenario(source)
    except ApiError as exc:
        raise aiohttp.ClientError(str(exc)) from None


async def _steps(
    run: _Run, result: ScenarioResult, progress: Callable[[StepResult], None] | None
) -> None:
    failed = False
    for step in run.scenario.steps:
        if failed:
            outcome = StepResult(step, None, "not run")
        else:
            began = time.monotonic()
            try:
                status, body = await run.step(step)
                detail = check(step, status, body, run.context)
                if step.save_as is not None:
                    run.context[step.save_as] = body
                outcome = StepResult(step, True, detail, time.monotonic() - began)
            except StepFailed as exc:  # an answer that is not what the step expects
                outcome = StepResult(step, False, str(exc), time.monotonic() - began)
                failed = True
            except Exception as exc:  # the step could not be carried out: an error
                outcome = StepResult(
                    step, False, _crash(run, exc), time.monotonic() - began, crashed=True
                )
                failed = True
        result.steps.append(outcome)
        if progress is not None:
            progress(outcome)


def _crash(run: _Run, exc: Exception) -> str:
    """What stopped a step: a template or value problem (``file:line: ...``), no answer
    in time, a broken connection, or any other exception (named)."""
    if isinstance(exc, OtpsimError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"no answer from the simulator at {run.client.base_url} in time"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return f"cannot talk to the simulator at {run.client.base_url}: {_reason(exc)}"
    return f"{type(exc).__name__}: {exc}"
