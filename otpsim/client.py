"""A small typed client for a running otpsim: the control API and the provider API.

:class:`Client` is synchronous (standard library only), :class:`AsyncClient` is for
asyncio (aiohttp). Both run the same operations (:class:`Ops`, sans-IO generators over
:class:`Call` specs), so every path, parameter, answer shape and multi-request helper is
written once; the pytest plugin, the scenario runner and ``otpsim tail`` all use them.

Example::

    sim = Client("http://127.0.0.1:8790", api_key="my-key")
    otp = sim.create_otp({"phoneNumber": "+33612345678"})
    pin = sim.latest_pin(otp_id=otp["otpId"], timeout=5)
    sim.verify(otp["otpId"], pin)
    sim.advance(600)

    async with AsyncClient("http://127.0.0.1:8790") as sim:
        message = await sim.latest_message("+33612345678", wait=5)
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import aiohttp

from otpsim.errors import OtpsimError

Json = dict[str, Any]
T = TypeVar("T")


class ApiError(OtpsimError):
    """The simulator answered an error (the provider's error shape)."""

    def __init__(self, status: int, body: Any, what: str) -> None:
        self.status = status
        self.body = body
        error = body.get("error") if isinstance(body, dict) else None
        self.type = error.get("type") if isinstance(error, dict) else None
        self.code = error.get("code") if isinstance(error, dict) else None
        detail = (
            f"{status} {self.type} {self.code}: {error.get('message')}"
            if isinstance(error, dict)
            else f"{status}"
        )
        super().__init__(f"{what} answered {detail}")


class NoMessage(AssertionError):
    """No SMS arrived within the time a helper waited for one."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP call and how to read its answer."""

    method: str
    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Any = None
    data: bytes | None = None
    content_type: str | None = None
    provider: bool = False  # send the API key
    pick: str | None = None  # return body[pick] rather than the body
    none_on_404: bool = False

    def query(self) -> dict[str, str]:
        return {k: _text(v) for k, v in self.params.items() if v is not None}

    def result(self, response: Response) -> Any:
        if response.status == 404 and self.none_on_404:
            return None
        if response.status >= 400:
            raise ApiError(response.status, response.body, f"{self.method} {self.path}")
        return response.body[self.pick] if self.pick else response.body


REPOLL_MIN = 0.05  # seconds: less left than this is not worth another long poll


def preempted(answer: Response) -> bool:
    """A long poll the server ended early (``Retry-After: 0`` on its 404) to make room
    at its ``--max-streams`` cap: the caller polls again for the time it has left."""
    if answer.status != 404:
        return False
    return any(k.lower() == "retry-after" and v == "0" for k, v in answer.headers.items())


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _scenario_body(scenario: str | Path | Mapping[str, Any]) -> tuple[bytes, str]:
    """A scenario as a request body: a file's text, YAML text, or a mapping as JSON."""
    if isinstance(scenario, Mapping):
        return json.dumps(scenario).encode(), "application/json"
    if isinstance(scenario, Path) or (
        "\n" not in scenario and scenario.endswith((".yaml", ".yml", ".json"))
    ):
        return Path(scenario).read_bytes(), "application/yaml"
    return scenario.encode(), "application/yaml"


class Calls:
    """Every call otpsim understands, as :class:`Call` specs (shared by both clients)."""

    def __init__(self, account: str | None = None) -> None:
        self.account = account  # scope control-API queries to one account

    def _scoped(self, **params: Any) -> dict[str, Any]:
        """``params`` scoped to the account; not when they name an OTP: an OTP id is
        unique, and scoping it only hides what the application's own key created."""
        account = None if params.get("otpId") else self.account
        return {"account": account, **params}

    # the control API
    def health(self) -> Call:
        return Call("GET", "/_sim/health")

    def messages(self, phone: str | None, otp_id: str | None, limit: int | None) -> Call:
        params = self._scoped(phoneNumber=phone, otpId=otp_id, limit=limit)
        return Call("GET", "/_sim/messages", params, pick="messages")

    def latest_message(self, phone: str | None, otp_id: str | None, wait: float) -> Call:
        params = self._scoped(phoneNumber=phone, otpId=otp_id, wait=wait or None)
        return Call("GET", "/_sim/messages/latest", params, none_on_404=True)

    def clear_messages(self) -> Call:
        return Call("DELETE", "/_sim/messages", self._scoped())

    def otps(self, phone: str | None, status: str | None) -> Call:
        return Call(
            "GET", "/_sim/otps", self._scoped(phoneNumber=phone, status=status), pick="otps"
        )

    def otp(self, otp_id: str) -> Call:
        return Call("GET", f"/_sim/otps/{otp_id}")

    def clock(self) -> Call:
        return Call("GET", "/_sim/clock", self._scoped())

    def move_clock(self, **change: Any) -> Call:
        json = {k: v for k, v in change.items() if v is not None}
        return Call("POST", "/_sim/clock", self._scoped(), json=json)

    def reset(self) -> Call:
        return Call("POST", "/_sim/reset", self._scoped())

    def callbacks(self, otp_id: str | None, status: str | None) -> Call:
        params = self._scoped(otpId=otp_id, status=status)
        return Call("GET", "/_sim/callbacks", params, pick="callbacks")

    def resend_callback(self, delivery_id: str) -> Call:
        return Call("POST", f"/_sim/callbacks/{delivery_id}/resend")

    def requests(self, filters: Mapping[str, Any], limit: int | None) -> Call:
        params = self._scoped(**filters, limit=limit)
        return Call("GET", "/_sim/requests", params, pick="requests")

    def latest_request(self, filters: Mapping[str, Any], wait: float) -> Call:
        params = self._scoped(**filters, wait=wait or None)
        return Call("GET", "/_sim/requests/latest", params, none_on_404=True)

    def clear_requests(self) -> Call:
        return Call("DELETE", "/_sim/requests", self._scoped())

    def scenario(self) -> Call:
        return Call("GET", "/_sim/scenario", self._scoped())

    def use_scenario(self, scenario: str | Path | Mapping[str, Any]) -> Call:
        data, content_type = _scenario_body(scenario)
        params = self._scoped()
        return Call("PUT", "/_sim/scenario", params, data=data, content_type=content_type)

    def clear_scenario(self) -> Call:
        return Call("DELETE", "/_sim/scenario", self._scoped())

    # the provider API
    def create_otp(self, body: Mapping[str, Any]) -> Call:
        return Call("POST", "/otp", json=dict(body), provider=True)

    def get_otp(self, otp_id: str) -> Call:
        return Call("GET", f"/otp/{otp_id}", provider=True)

    def verify(self, otp_id: str, pin: str) -> Call:
        return Call("POST", f"/otp/{otp_id}", json={"pin": pin}, provider=True)

    def cancel(self, otp_id: str) -> Call:
        return Call("DELETE", f"/otp/{otp_id}", provider=True)


def _headers(call: Call, api_key: str | None, admin_token: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if call.provider and api_key:
        headers["X-API-KEY"] = api_key
    elif admin_token:
        headers["Authorization"] = f"Bearer {admin_token}"
    elif api_key and call.params.get("account") == api_key:
        # An account may set itself up (scenario, reset) with its own key instead.
        headers["X-API-KEY"] = api_key
    if call.json is not None:
        headers["Content-Type"] = "application/json"
    elif call.content_type:
        headers["Content-Type"] = call.content_type
    return headers


def _no_message(
    phone: str | None,
    otp_id: str | None,
    timeout: float,
    account: str | None = None,
    elsewhere: Json | None = None,
) -> NoMessage:
    """The error of a helper that waited in vain; ``elsewhere``: a matching SMS that
    another account received (the application authenticates as another account)."""
    about = " and ".join(p for p in (phone and f"phone {phone}", otp_id and f"OTP {otp_id}") if p)
    scope = f" to account {account!r}" if account and not otp_id else ""
    text = f"no SMS delivered{' for ' + about if about else ''}{scope} within {timeout:g}s"
    if elsewhere is not None:
        other = elsewhere.get("account")
        text += (
            f"; but account {other!r} received one (otpId {elsewhere.get('otpId')}): the "
            f"application authenticates as {other!r} (its API key or OAuth client id). "
            f"Look there: account={other!r} (Client, otpsim.testing.Controller), or "
            f"return {other!r} from the otpsim_account fixture"
        )
    return NoMessage(text)


def request_filters(
    path: str | None = None,
    *,
    status: int | str | None = None,
    method: str | None = None,
    phone: str | None = None,
    otp_id: str | None = None,
    since: str | None = None,
    pins: bool = False,
) -> dict[str, Any]:
    """The query of ``/_sim/requests`` for these filters (None: any)."""
    return {
        "path": path, "status": status, "method": method, "phoneNumber": phone,
        "otpId": otp_id, "since": since, "pins": "show" if pins else None,
    }  # fmt: skip


def subset_mismatch(expected: Any, got: Any, where: str = "body") -> str | None:
    """The first way ``got`` differs from ``expected`` (``where: expected X, got Y``), or
    None; mappings compare as subsets (only the keys expected), lists item by item."""
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping):
            return f"{where}: expected a mapping, got {got!r}"
        for key, value in expected.items():
            if key not in got:
                return f"{where}.{key}: missing (expected {value!r})"
            found = subset_mismatch(value, got[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            return f"{where}: expected {expected!r}, got {got!r}"
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            found = subset_mismatch(e, g, f"{where}[{i}]")
            if found:
                return found
        return None
    if expected != got and not (isinstance(got, str) and str(expected) == got):
        return f"{where}: expected {expected!r}, got {got!r}"
    return None


MAX_LISTED = 10  # requests a failed assert_called lists


def _path_ok(entry: Json, path: str) -> bool:
    got = str(entry.get("path"))
    return got.startswith(path[:-1]) if path.endswith("*") else got == path


def _method_ok(entry: Json, method: str | None) -> bool:
    return method is None or str(entry.get("method")) == method.upper()


def matching_calls(
    entries: list[Json],
    path: str,
    *,
    method: str | None = None,
    status: int | str | None = None,
    body: Any = None,
) -> list[Json]:
    """The journal entries that are a call of ``path`` (exact, or a prefix ending in
    ``*``) with this ``method``, answered ``status`` (``503``, ``"4xx"``), with a body
    containing ``body`` (a subset); ValueError for a status that is neither."""
    from otpsim.domain.journal import parse_status

    wanted = parse_status(str(status)) if status is not None else None
    if status is not None and wanted is None:
        raise ValueError(f"status must be an HTTP status (503) or a class ('4xx'), not {status!r}")
    return [
        e
        for e in entries
        if _path_ok(e, path)
        and _method_ok(e, method)
        and (wanted is None or wanted[0] <= int(e.get("status", 0)) <= wanted[1])
        and (body is None or subset_mismatch(body, e.get("body")) is None)
    ]


def called_problem(
    entries: list[Json],
    path: str,
    *,
    method: str | None = None,
    status: int | str | None = None,
    times: int | None = None,
    body: Any = None,
    show_pins: bool = False,
) -> str | None:
    """Why ``entries`` (the journal, newest first, PINs shown) do not show ``path`` called
    as expected, or None. ``times`` None: at least once. The message lists what WAS
    called, the closest first (same method and path, then same path, then the rest), so
    that a failing test explains itself; PINs masked unless ``show_pins`` (a helper in
    the user's own test shows what the application sent, to compare with ``body``)."""
    from otpsim.domain.journal import mask_body

    count = len(matching_calls(entries, path, method=method, status=status, body=body))
    if (times is None and count > 0) or count == times:
        return None
    what = " ".join(
        part
        for part in (
            method.upper() if method else None,
            path,
            f"with status {status}" if status is not None else None,
            f"with a body like {body!r}" if body is not None else None,
        )
        if part
    )
    expected = "at least once" if times is None else f"{times} time(s)"
    text = f"expected {what} to be called {expected}, but it was called {count} time(s)"
    if not entries:
        return text + "; no request was received at all"

    def closeness(entry: Json) -> int:
        return (0 if _path_ok(entry, path) else 2) + (0 if _method_ok(entry, method) else 1)

    listed = sorted(entries, key=closeness)[:MAX_LISTED]
    lines = []
    for entry in listed:
        error = entry.get("error") or {}
        detail = f" {error.get('type')} {error.get('code')}" if error else ""
        rules = f" rules={entry['rules']}" if entry.get("rules") else ""
        shown = entry.get("body") if show_pins else mask_body(entry.get("body"))
        lines.append(
            f"  {entry.get('id')} {entry.get('method')} {entry.get('path')} -> "
            f"{entry.get('status')}{detail}{rules} body={shown!r}"
        )
    more = len(entries) - len(listed)
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return f"{text}. Requests received (closest first):\n" + "\n".join(lines) + tail


def websocket_url(base: str) -> str:
    """The live-events websocket of a simulator at ``base`` (http -> ws, https -> wss)."""
    base = base.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://") + "/_sim/ws"
    return "ws://" + base.removeprefix("http://") + "/_sim/ws"


Op = Generator[Call, Response, T]
"""A sans-IO operation: yields the :class:`Call` s it makes, receives each one's
:class:`Response`, returns the result. :class:`Client` and :class:`AsyncClient` drive
it (their only difference is the transport)."""


def _one(call: Call) -> Op[Any]:
    return call.result((yield call))


def _json(call: Call) -> Op[Json]:
    return cast(Json, (yield from _one(call)))


def _list(call: Call) -> Op[list[Json]]:
    return cast(list[Json], (yield from _one(call)))


def _maybe(call: Call) -> Op[Json | None]:
    return cast(Json | None, (yield from _one(call)))


def _none(call: Call) -> Op[None]:
    yield from _one(call)


def _soft(call: Call) -> Op[Any]:
    """The call's result, or None if it was refused (a hint that cannot be had)."""
    answer = yield call
    if answer.status >= 400:
        return None
    return answer.body[call.pick] if call.pick else answer.body


def _seconds_between(start: str, end: str) -> float:
    """Seconds from one ISO time to another (``...Z``), to a tenth."""
    from datetime import datetime

    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return round(delta.total_seconds(), 1)


class Ops:
    """Every public operation of the clients, written once, without I/O: each method
    has the public signature and returns an :data:`Op`; the clients' methods of the
    same name run it (a test keeps the three signatures equal)."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    # -- control API ------------------------------------------------------------------

    def health(self) -> Op[Json]:
        return _json(self.calls.health())

    def messages(
        self, phone: str | None = None, *, otp_id: str | None = None, limit: int | None = None
    ) -> Op[list[Json]]:
        """SMS sent by the simulator, newest first."""
        return _list(self.calls.messages(phone, otp_id, limit))

    def latest_message(
        self, phone: str | None = None, *, otp_id: str | None = None, wait: float = 0
    ) -> Op[Json | None]:
        """The newest delivered SMS, waiting up to ``wait`` seconds for one; else None."""
        return _maybe(self.calls.latest_message(phone, otp_id, wait))

    def wait_message(
        self, phone: str | None = None, *, otp_id: str | None = None, timeout: float = 5.0
    ) -> Op[Json]:
        """The newest delivered SMS, waiting for it; raises NoMessage after ``timeout``
        seconds (saying so when another account received a matching one)."""
        deadline = time.monotonic() + timeout
        call = self.calls.latest_message(phone, otp_id, timeout)
        answer = yield call
        while preempted(answer) and (left := deadline - time.monotonic()) > REPOLL_MIN:
            answer = yield self.calls.latest_message(phone, otp_id, left)
        message = cast(Json | None, call.result(answer))
        if message is not None:
            return message
        account = self.calls.account
        elsewhere = None
        if account is not None and phone and otp_id is None:
            elsewhere = yield from _maybe(Calls().latest_message(phone, None, 0))
        error = _no_message(phone, otp_id, timeout, account, elsewhere)
        if elsewhere is None:
            why = yield from self._not_delivered(phone, otp_id)
            if why:
                error = NoMessage(f"{error}; {why}")
        raise error

    def _not_delivered(self, phone: str | None, otp_id: str | None) -> Op[str | None]:
        """Why the newest SMS asked for is not delivered, if one was sent: still QUEUED
        (when it is due, on the account's clock) or UNDELIVERED (by which scenario
        rules, from the request journal). None when unknown (or not readable)."""
        newest = yield from _soft(self.calls.messages(phone, otp_id, 1))
        if not newest or not isinstance(newest, list):
            return None
        message = newest[0]
        status, about = message.get("status"), f"(otpId {message.get('otpId')})"
        if status == "QUEUED":
            due = message.get("deliverAt")
            clock = yield from _soft(self.calls.clock())
            when = ""
            if due and isinstance(clock, dict) and clock.get("now"):
                left = _seconds_between(str(clock["now"]), str(due))
                when = f", due in {left:g}s on the simulator clock (at {due})"
            return (
                f"one is QUEUED {about}{when}: advance the clock to deliver it "
                f"(otpsim.advance(seconds), POST /_sim/clock)"
            )
        if status == "UNDELIVERED":
            filters = request_filters("/otp", method="POST", otp_id=message.get("otpId"))
            entries = yield from _soft(Calls().requests(filters, 1))
            rules = entries[0].get("rules") if entries and isinstance(entries, list) else None
            by = f" by scenario rule(s) {', '.join(map(repr, rules))}" if rules else ""
            return f"it was UNDELIVERED {about}{by}: the network gave up, it never arrives"
        return None

    def latest_pin(
        self, phone: str | None = None, *, otp_id: str | None = None, timeout: float = 5.0
    ) -> Op[str]:
        """The PIN of the newest delivered SMS; raises NoMessage after ``timeout`` seconds."""
        message = yield from self.wait_message(phone, otp_id=otp_id, timeout=timeout)
        return str(message["pin"])

    def clear_messages(self) -> Op[None]:
        return _none(self.calls.clear_messages())

    def otps(self, phone: str | None = None, *, status: str | None = None) -> Op[list[Json]]:
        return _list(self.calls.otps(phone, status))

    def otp(self, otp_id: str) -> Op[Json]:
        """One OTP as stored: PIN and verify attempts included."""
        return _json(self.calls.otp(otp_id))

    def clock(self) -> Op[Json]:
        return _json(self.calls.clock())

    def advance(self, seconds: float) -> Op[Json]:
        """Move the simulator clock forward; expiries and retries in between happen."""
        return _json(self.calls.move_clock(advance=seconds))

    def set_clock(self, when: str) -> Op[Json]:
        return _json(self.calls.move_clock(set=when))

    def freeze(self, frozen: bool = True) -> Op[Json]:
        return _json(self.calls.move_clock(freeze=frozen))

    def reset(self) -> Op[None]:
        return _none(self.calls.reset())

    def callbacks(self, otp_id: str | None = None, *, status: str | None = None) -> Op[list[Json]]:
        """Callback deliveries, newest first, with every attempt."""
        return _list(self.calls.callbacks(otp_id, status))

    def resend_callback(self, delivery_id: str) -> Op[Json]:
        return _json(self.calls.resend_callback(delivery_id))

    def requests(
        self,
        path: str | None = None,
        *,
        status: int | str | None = None,
        method: str | None = None,
        phone: str | None = None,
        otp_id: str | None = None,
        since: str | None = None,
        limit: int | None = None,
        pins: bool = False,
    ) -> Op[list[Json]]:
        """The request journal, newest first: provider-API requests, refused ones too.
        ``path``: exact, or a prefix ending in ``*``; ``status``: ``503`` or ``"4xx"``;
        ``pins``: PINs in bodies as sent (masked otherwise)."""
        filters = request_filters(
            path, status=status, method=method, phone=phone, otp_id=otp_id, since=since,
            pins=pins,
        )  # fmt: skip
        return _list(self.calls.requests(filters, limit))

    def latest_request(
        self,
        path: str | None = None,
        *,
        status: int | str | None = None,
        method: str | None = None,
        phone: str | None = None,
        otp_id: str | None = None,
        wait: float = 0,
        pins: bool = False,
    ) -> Op[Json | None]:
        """The newest journaled request matching, waiting up to ``wait`` seconds for one;
        else None."""
        filters = request_filters(
            path, status=status, method=method, phone=phone, otp_id=otp_id, pins=pins
        )
        return _maybe(self.calls.latest_request(filters, wait))

    def clear_requests(self) -> Op[None]:
        """Empty the request journal (this account's entries, when scoped to one)."""
        return _none(self.calls.clear_requests())

    def scenario(self) -> Op[Json]:
        return _json(self.calls.scenario())

    def use_scenario(self, scenario: str | Path | Mapping[str, Any]) -> Op[Json]:
        """Activate a scenario's network: a file path, YAML text, or a mapping."""
        return _json(self.calls.use_scenario(scenario))

    def clear_scenario(self) -> Op[Json]:
        return _json(self.calls.clear_scenario())

    # -- provider API -----------------------------------------------------------------

    def create_otp(self, body: Mapping[str, Any]) -> Op[Json]:
        return _json(self.calls.create_otp(body))

    def get_otp(self, otp_id: str) -> Op[Json]:
        return _json(self.calls.get_otp(otp_id))

    def verify(self, otp_id: str, pin: str) -> Op[Json]:
        return _json(self.calls.verify(otp_id, pin))

    def cancel(self, otp_id: str) -> Op[Json]:
        return _json(self.calls.cancel(otp_id))


class Client:
    """Synchronous client (standard library ``urllib``)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        account: str | None = None,
        admin_token: str | None = None,
        timeout: float = 75.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.admin_token = admin_token
        self.timeout = timeout
        self.calls = Calls(account)
        self.ops = Ops(self.calls)

    def request(self, call: Call) -> Response:
        """Send one call; any HTTP status comes back as a Response (never raises for it)."""
        url = self.base_url + call.path
        query = call.query()
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(call.json).encode() if call.json is not None else call.data
        request = urllib.request.Request(
            url,
            data=data,
            method=call.method,
            headers=_headers(call, self.api_key, self.admin_token),
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                status, raw, headers = answer.status, answer.read(), dict(answer.headers)
        except urllib.error.HTTPError as exc:
            status, raw, headers = exc.code, exc.read(), dict(exc.headers)
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        return Response(status, body, headers)

    def send(self, call: Call) -> Any:
        return call.result(self.request(call))

    def _run(self, op: Op[T]) -> T:
        """Drive one operation: send each call it yields, hand it the response."""
        call = next(op)
        while True:
            try:
                call = op.send(self.request(call))
            except StopIteration as done:
                return cast(T, done.value)

    # -- control API ------------------------------------------------------------------

    def health(self) -> Json:
        return self._run(self.ops.health())

    def messages(
        self, phone: str | None = None, *, otp_id: str | None = None, limit: int | None = None
    ) -> list[Json]:
        return self._run(self.ops.messages(phone, otp_id=otp_id, limit=limit))

    def latest_message(
        self, phone: str | None = None, *, otp_id: str | None = None, wait: float = 0
    ) -> Json | None:
        return self._run(self.ops.latest_message(phone, otp_id=otp_id, wait=wait))

    def wait_message(
        self, phone: str | None = None, *, otp_id: str | None = None, timeout: float = 5.0
    ) -> Json:
        return self._run(self.ops.wait_message(phone, otp_id=otp_id, timeout=timeout))

    def latest_pin(
        self, phone: str | None = None, *, otp_id: str | None = None, timeout: float = 5.0
    ) -> str:
        return self._run(self.ops.latest_pin(phone, otp_id=otp_id, timeout=timeout))

    def clear_messages(self) -> None:
        self._run(self.ops.clear_messages())

    def otps(self, phone: str | None = None, *, status: str | None = None) -> list[Json]:
        return self._run(self.ops.otps(phone, status=status))

    def otp(self, otp_id: str) -> Json:
        return self._run(self.ops.otp(otp_id))

    def clock(self) -> Json:
        return self._run(self.ops.clock())

    def advance(self, seconds: float) -> Json:
        return self._run(self.ops.advance(seconds))

    def set_clock(self, when: str) -> Json:
        return self._run(self.ops.set_clock(when))

    def freeze(self, frozen: bool = True) -> Json:
        return self._run(self.ops.freeze(frozen))

    def reset(self) -> None:
        self._run(self.ops.reset())

    def callbacks(self, otp_id: str | None = None, *, status: str | None = None) -> list[Json]:
        return self._run(self.ops.callbacks(otp_id, status=status))

    def resend_callback(self, delivery_id: str) -> Json:
        return self._run(self.ops.resend_callback(delivery_id))

    def requests(
        self,
        path: str | None = None,
        *,
        status: int | str | None = None,
        method: str | None = None,
        phone: str | None = None,
        otp_id: str | None = None,
        since: str | None = None,
        limit: int | None = None,
        pins: bool = False,
    ) -> list[Json]:
        return self._run(
            self.ops.requests(
                path, status=status, method=method, phone=phone, otp_id=otp_id, since=since,
                limit=limit, pins=pins,
            )
        )  # fmt: skip

    def latest_request(
        self,
        path: str | None = None,
        *,
        status: int | str | None = None,
        method: str | None = None,
        phone: str | None = None,
        otp_id: str | None = None,
        wait: float = 0,
        pins: bool = False,
    ) -> Json | None:
        return self._run(
            self.ops.latest_request(
                path, status=status, method=method, phone=phone, otp_id=otp_id, wait=wait,
                pins=pins,
            )
        )  # fmt: skip

    def clear_requests(self) -> None:
        self._run(self.ops.clear_requests())

    def scenario(self) -> Json:
        return self._run(self.ops.scenario())

    def use_scenario(self, scenario: str | Path | Mapping[str, Any]) -> Json:
        return self._run(self.ops.use_scenario(scenario))

    def clear_scenario(self) -> Json:
        return self._run(self.ops.clear_scenario())

    # -- provider API -----------------------------------------------------------------

    def create_otp(self, body: Mapping[str, Any]) -> Json:
        return self._run(self.ops.create_otp(body))

    def get_otp(self, otp_id: str) -> Json:
        return self._run(self.ops.get_otp(otp_id))

    def verify(self, otp_id: str, pin: str) -> Json:
        return self._run(self.ops.verify(otp_id, pin))

    def cancel(self, otp_id: str) -> Json:
        return self._run(self.ops.cancel(otp_id))


class AsyncClient:
    """Asynchronous client (aiohttp). Use ``async with``, or call :meth:`close`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        account: str | None = None,
        admin_token: str | None = None,
        timeout: float = 75.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.admin_token = admin_token
        self.calls = Calls(account)
        self.ops = Ops(self.calls)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def request(self, call: Call, *, headers: Mapping[str, str] | None = None) -> Response:
        """Send one call; any HTTP status comes back as a Response (never raises for it)."""
        all_headers = {**_headers(call, self.api_key, self.admin_token), **(headers or {})}
        data = json.dumps(call.json).encode() if call.json is not None else call.data
        async with self._http().request(
            call.method, self.base_url + call.path, params=call.query(), data=data,
            headers=all_headers,
        ) as answer:  # fmt: skip
            raw = await answer.read()
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            return Response(answer.status, body, dict(answer.headers))

    async def send(self, call: Call) -> Any:
        return call.result(await self.request(call))

    async def _run(self, op: Op[T]) -> T:
        """Drive one operation: send each call it yields, hand it the response."""
        call = next(op)
        while True:
            try:
                call = op.send(await self.request(call))
            except StopIteration as done:
                return cast(T, done.value)

    async def events(self) -> AsyncIterator[Json]:
        """The live events (``/_sim/ws``) as they happen, forever."""
        import websockets

        url = websocket_url(self.base_url)
        headers = {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else None
        async with websockets.connect(url, max_size=2**22, additional_headers=headers) as ws:
            async for raw in ws:
                yield json.loads(raw)

    # -- control API ------------------------------------------------------------------

    async def health(self) -> Json:
        return await self._run(self.ops.health())

    async def messages(
        self, phone: str | None = None, *, otp_id: str | None = None, limit: int | None = None
    ) -> list[Json]:
        return await self._run(self.ops.messages(phone, otp_id=otp_id, limit=limit))

    async def latest_message(
        self, phone: str | None = None, *, otp_id: str | None = None, wait: float = 0
    ) -> Json | None:
        return await self._run(self.ops.latest_message(phone, otp_id=otp_id, wait=wait))

    async def wait_message(
        self,
        phone: str | None = None,
        *,
        otp_id: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 (bounds the server-side long poll)
    ) -> Json:
        return await self._run(self.ops.wait_message(phone, otp_id=otp_id, timeout=timeout))

    async def latest_pin(
        self,
        phone: str | None = None,
        *,
        otp_id: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 (bounds the server-side long poll)
    ) -> str:
        return await self._run(self.ops.latest_pin(phone, otp_id=otp_id, timeout=timeout))

    async def clear_messages(self) -> None:
        await self._run(self.ops.clear_messages())

    async def otps(self, phone: str | None = None, *, status: str | None = None) -> list[Json]:
        return await self._run(self.ops.otps(phone, status=status))

    async def otp(self, otp_id: str) -> Json:
        return await self._run(self.ops.otp(otp_id))

    async def clock(self) -> Json:
        return await self._run(self.ops.clock())

    async def advance(self, seconds: float) -> Json:
        return await self._run(self.ops.advance(seconds))

    async def set_clock(self, when: str) -> Json:
        return await self._run(self.ops.set_clock(when))

    async def freeze(self, frozen: bool = True) -> Json:
        return await self._run(self.ops.freeze(frozen))

    async def reset(self) -> None:
        await self._run(self.ops.reset())

    async def callbacks(
        self, otp_id: str | None = None, *, status: str | None = None
    ) -> list[Json]:
        return await self._run(self.ops.callbacks(otp_id, status=status))

    async def resend_callback(self, delivery_id: str) -> Json:
        return await self._run(self.ops.resend_callback(delivery_id))

    async def requests(
        self,
        path: str | None = None,
        *,
        status: int | str | None = None,
        method: str | None = None,
        phone: str | None = None,
        otp_id: str | None = None,
        since: str | None = None,
        limit: int | None = None,
        pins: bool = False,
    ) -> list[Json]:
        return await self._run(
            self.ops.requests(
                path, status=status, method=method, phone=phone, otp_id=otp_id, since=since,
                limit=limit, pins=pins,
            )
        )  # fmt: skip

    async def latest_request(
        self,
        path: str | None = None,
        *,
        status: int | str | None = None,
        method: str | None = None,
        phone: str | None = None,
        otp_id: str | None = None,
        wait: float = 0,
        pins: bool = False,
    ) -> Json | None:
        return await self._run(
            self.ops.latest_request(
                path, status=status, method=method, phone=phone, otp_id=otp_id, wait=wait,
                pins=pins,
            )
        )  # fmt: skip

    async def clear_requests(self) -> None:
        await self._run(self.ops.clear_requests())

    async def scenario(self) -> Json:
        return await self._run(self.ops.scenario())

    async def use_scenario(self, scenario: str | Path | Mapping[str, Any]) -> Json:
        return await self._run(self.ops.use_scenario(scenario))

    async def clear_scenario(self) -> Json:
        return await self._run(self.ops.clear_scenario())

    # -- provider API -----------------------------------------------------------------

    async def create_otp(self, body: Mapping[str, Any]) -> Json:
        return await self._run(self.ops.create_otp(body))

    async def get_otp(self, otp_id: str) -> Json:
        return await self._run(self.ops.get_otp(otp_id))

    async def verify(self, otp_id: str, pin: str) -> Json:
        return await self._run(self.ops.verify(otp_id, pin))

    async def cancel(self, otp_id: str) -> Json:
        return await self._run(self.ops.cancel(otp_id))


def _share_docs() -> None:
    """The clients' methods carry their operation's docstring (written once, in Ops)."""
    for name in _OPERATIONS:
        for client in (Client, AsyncClient):
            getattr(client, name).__doc__ = getattr(Ops, name).__doc__


_OPERATIONS = sorted(n for n in vars(Ops) if not n.startswith("_"))
_share_docs()
