"""Scenario files: YAML in, typed network rules and steps out, or one clear error.

A scenario has two optional halves: ``network`` (how the simulated carrier behaves while
the scenario is active) and ``steps`` (a script with expectations for ``otpsim run``).
Every problem is reported before anything runs, as ``file:line: where: what was
expected`` (unknown step, wrong type, missing field, bad reference). The format is
documented in ``docs/scenarios.md``.

Example::

    scenario = load_scenario("scenarios/expiry.yaml")
    scenario.steps[0].kind      # "create"
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from otpsim.clock import parse_iso
from otpsim.domain.defaults import OtpDefaults
from otpsim.domain.journal import parse_status
from otpsim.domain.otp import Status
from otpsim.domain.pins import check_fixed
from otpsim.domain.request import check_defaults
from otpsim.engine.network import (
    DEFAULT_FIELDS,
    ERROR_STATUSES,
    MAX_SEED,
    Action,
    Endpoint,
    Fate,
    FaultKind,
    Network,
    NetworkSpec,
    Rule,
)
from otpsim.errors import OtpsimError, ProviderError
from otpsim.scenario import builtin
from otpsim.scenario.templates import TemplateProblem, is_template
from otpsim.scenario.templates import check as check_template
from otpsim.yamlutil import Path as KeyPath
from otpsim.yamlutil import YamlDoc, load_yaml

MAX_SCENARIO_BYTES = 1024 * 1024
MAX_LATENCY = 30.0
MAX_HANG = 3600.0  # a rule's hang: seconds (the server holds at most --max-wait)
MAX_WAIT = 120.0
MAX_NAME_CHARS = 200  # a scenario's or a step's name
MAX_NOTE_CHARS = 500  # a rule's note
MAX_TEXT_CHARS = 4096  # any other text field (description, otpId, path, header value, ...)
BUILTIN_NAMES = ("callback_url", "target")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Expect:
    status: int | None = None
    error: Mapping[str, Any] | None = None
    body: Any = None

    @property
    def wants_success(self) -> bool:
        """No status or error asked for: the step must succeed (2xx)."""
        return self.status is None and self.error is None


@dataclass(frozen=True, slots=True)
class Step:
    index: int  # 1-based
    kind: str
    args: Any
    line: int
    name: str | None = None
    save_as: str | None = None
    expect: Expect = field(default_factory=Expect)

    @property
    def title(self) -> str:
        return self.name or self.kind


@dataclass(frozen=True, slots=True)
class Scenario:
    path: str
    name: str
    description: str = ""
    network: NetworkSpec | None = None
    steps: tuple[Step, ...] = ()
    api_key: str = "otpsim-run"
    receiver_responses: tuple[int, ...] = ()


# -- small checkers ----------------------------------------------------------------------


MAX_PROBLEMS = 100  # listed for one file; the rest are counted
_MAX_KEPT = 10 * MAX_PROBLEMS  # noted (to list the first in file order), past it counted


class ScenarioInvalid(OtpsimError):
    """The problems of a scenario, in file order; ``str()`` is one line each (at most
    MAX_PROBLEMS, then one saying how many more); ``count`` is how many in all."""

    def __init__(self, problems: Sequence[str], count: int) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)
        self.count = count


class _Problem(OtpsimError):
    """One problem, at a line of the file (for reporting them in file order)."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class _Noted(OtpsimError):
    """The problems of a part were noted already: ``collect`` skips the part's value."""

    def __init__(self) -> None:
        super().__init__("problems noted")


class _Collect:
    """``with reader.collect():`` a problem raised inside is noted, and checking goes on
    after the block: one mistake does not hide the next."""

    def __init__(self, reader: _Reader) -> None:
        self.reader = reader

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: object, trace: object) -> bool:
        if isinstance(exc, _Problem):
            self.reader.note(exc)
            return True
        return isinstance(exc, _Noted)


class _Reader:
    """Checks values of one document: a check raises an error naming file, line and key;
    :meth:`collect` notes it and goes on, so that every problem is reported."""

    def __init__(self, doc: YamlDoc) -> None:
        self.doc = doc
        self.problems: list[_Problem] = []  # the first _MAX_KEPT
        self.found = 0  # every one

    def fail(self, path: KeyPath, what: str) -> _Problem:
        return _Problem(str(self.doc.error(path, what)), self.doc.line(path))

    def note(self, problem: _Problem) -> None:
        self.found += 1
        if len(self.problems) < _MAX_KEPT:
            self.problems.append(problem)

    def collect(self) -> _Collect:
        return _Collect(self)

    def raise_problems(self) -> None:
        """Raise ScenarioInvalid with the problems noted, in file order, if any: at most
        MAX_PROBLEMS lines (a small body must not make a huge answer), then a count."""
        ordered = sorted(self.problems, key=lambda p: p.line)  # stable: same line, as found
        unique = list(dict.fromkeys(str(p) for p in ordered))
        if not unique:
            return
        count = self.found - (len(ordered) - len(unique))
        shown = unique[:MAX_PROBLEMS]
        if count > len(shown):
            shown.append(f"{self.doc.filename}: {count - len(shown)} more problems not shown")
        raise ScenarioInvalid(shown, count)

    def mapping(
        self, value: Any, path: KeyPath, allowed: tuple[str, ...], *, go_on: bool = False
    ) -> dict[str, Any]:
        """``value`` if a mapping of ``allowed`` keys; else raises, or with ``go_on`` notes
        each unknown key and returns the mapping (whose caller reads the allowed keys)."""
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                problem = self.fail(
                    (*path, str(key)), f"unknown key (expected one of: {', '.join(allowed)})"
                )
                if not go_on:
                    raise problem
                self.note(problem)
        return value

    def number(self, value: Any, path: KeyPath, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"expected a number from {low:g} to {high:g}, got {_kind(value)}")
        if not low <= value <= high:
            raise self.fail(path, f"expected a number from {low:g} to {high:g}, got {value}")
        return float(value)

    def integer(self, value: Any, path: KeyPath) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected a whole number, got {_kind(value)}")
        return value

    def boolean(self, value: Any, path: KeyPath) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {_kind(value)}")
        return value

    def text(self, value: Any, path: KeyPath, limit: int = MAX_TEXT_CHARS) -> str:
        """Non-empty text of at most ``limit`` characters."""
        if not isinstance(value, str) or not value:
            raise self.fail(path, f"expected text, got {_kind(value)}")
        return self.bounded(value, path, limit)

    def scalar(self, value: Any, path: KeyPath, limit: int = MAX_TEXT_CHARS) -> str | int | float:
        """Text or a number (a plain YAML scalar such as ``2024``), never a list or a
        mapping, and at most ``limit`` characters once printed; returned unchanged."""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(path, f"expected text, got {_kind(value)}")
        if not isinstance(value, str):
            self.bounded(str(value), path, limit)  # at most 100 digits: cheap to print
            return value
        return self.bounded(value, path, limit)

    def label(self, value: Any, path: KeyPath, limit: int = MAX_TEXT_CHARS) -> str:
        """A :meth:`scalar` as text (``name: 2024`` is the name "2024")."""
        return str(self.scalar(value, path, limit))

    def bounded(self, text: str, path: KeyPath, limit: int) -> str:
        if len(text) > limit:
            raise self.fail(path, f"expected at most {limit:,} characters, got {len(text):,}")
        return text


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


# -- the network half --------------------------------------------------------------------

_ACTION_KEYS = ("deliver", "ok", "undelivered", "reject", "error", "rate_limit", "fault")
_FATE_KEYS = (*_ACTION_KEYS, "delay", "latency", "hang", "retry_after")
MAX_RETRY_AFTER = 3600
_RULE_KEYS = ("match", "on", "sequence", "chance", "note", *_FATE_KEYS)
_SMS_KEYS = ("undelivered", "reject", "delay")  # outcomes of an SMS: on create only
_ENDPOINTS = tuple(e.value for e in Endpoint)


def _fate(r: _Reader, data: dict[str, Any], path: KeyPath, create: bool = True) -> Fate:
    """One outcome; ``create``: the rule targets ``POST /otp`` only (SMS outcomes allowed).
    Every problem in it is noted (then a placeholder is returned: the scenario is refused
    at the end anyway)."""
    before = r.found
    actions = [k for k in _ACTION_KEYS if k in data]
    if len(actions) > 1:
        r.note(r.fail(path, f"expected one action, got {', '.join(actions)}"))
    if not create:
        for key in _SMS_KEYS:
            if key in data:
                r.note(r.fail((*path, key), f"'{key}' is about the SMS: only with 'on: create'"))
    latency = 0.0
    if "latency" in data:
        with r.collect():
            latency = r.number(data["latency"], (*path, "latency"), 0, MAX_LATENCY)
    delay = 0.0
    if "delay" in data:
        with r.collect():
            delay = r.number(data["delay"], (*path, "delay"), 0, 86400)
    action = actions[0] if actions else "deliver"
    fate = Fate(latency=latency)
    with r.collect():
        fate = _action(r, data, path, action, delay, latency, create)
    return fate if r.found == before else Fate()


def _action(
    r: _Reader,
    data: dict[str, Any],
    path: KeyPath,
    action: str,
    delay: float,
    latency: float,
    create: bool,
) -> Fate:
    if "hang" in data and (action != "fault" or data.get("fault") != "hang"):
        r.note(r.fail((*path, "hang"), "'hang' goes with 'fault: hang'"))
    retry_after = 1
    if "retry_after" in data:
        if not (action == "rate_limit" or (action == "error" and data["error"] == 429)):
            r.note(r.fail((*path, "retry_after"), "'retry_after' goes with a 429 (error: 429)"))
        with r.collect():
            retry_after = r.integer(data["retry_after"], (*path, "retry_after"))
            if not 0 <= retry_after <= MAX_RETRY_AFTER:
                raise r.fail(
                    (*path, "retry_after"),
                    f"expected a whole number from 0 to {MAX_RETRY_AFTER}, got {retry_after}",
                )
    if action == "ok":
        if data["ok"] is not True:
            raise r.fail((*path, "ok"), f"expected true, got {_kind(data['ok'])}")
        action = "deliver"
        data = {k: v for k, v in data.items() if k != "ok"}
    if action == "deliver":
        value = data.get("deliver", True)
        if isinstance(value, dict):
            r.mapping(value, (*path, "deliver"), ("delay",), go_on=True)
            if "delay" in value:
                if not create:
                    raise r.fail(
                        (*path, "deliver", "delay"),
                        "'delay' is about the SMS: only with 'on: create'",
                    )
                delay = r.number(value["delay"], (*path, "deliver", "delay"), 0, 86400)
        elif value is not True:
            raise r.fail((*path, "deliver"), "expected true or a mapping with 'delay'")
        return Fate(Action.DELIVER, delay=delay, latency=latency)
    if "delay" in data:
        r.note(r.fail((*path, "delay"), f"'delay' goes with deliver, not with {action}"))
    if action == "error":
        status = data["error"]
        if isinstance(status, bool) or status not in ERROR_STATUSES:
            choices = ", ".join(str(s) for s in ERROR_STATUSES)
            raise r.fail((*path, "error"), f"expected one of {choices}, got {_kind(status)}")
        return Fate(Action.ERROR, status=status, latency=latency, retry_after=retry_after)
    if action == "fault":
        kind = data["fault"]
        if not isinstance(kind, str) or kind not in FaultKind.__members__.values():
            choices = ", ".join(f.value for f in FaultKind)
            raise r.fail((*path, "fault"), f"expected one of: {choices}, got {_kind(kind)}")
        hang = None
        if "hang" in data:
            hang = r.number(data["hang"], (*path, "hang"), 0, MAX_HANG)
        return Fate(Action.FAULT, latency=latency, fault=FaultKind(kind), hang=hang)
    if data[action] is not True:
        raise r.fail((*path, action), f"expected true, got {_kind(data[action])}")
    return Fate(Action(action), latency=latency, retry_after=retry_after)


def _on(r: _Reader, value: Any, path: KeyPath) -> frozenset[Endpoint]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise r.fail(path, f"expected one of: {', '.join(_ENDPOINTS)} (or a list of them)")
    found = set()
    for i, item in enumerate(items):
        where = (*path, i) if isinstance(value, list) else path
        if not isinstance(item, str) or item not in _ENDPOINTS:
            raise r.fail(
                where, f"expected one of: {', '.join(_ENDPOINTS)} (or a list), got {_kind(item)}"
            )
        found.add(Endpoint(item))
    return frozenset(found)


def _match(r: _Reader, value: Any, path: KeyPath, *, numbers: bool = True) -> str:
    """A rule's ``match``: a number, a prefix or a regex; with ``numbers`` false (a rule
    only for ``token``), a client id, a prefix ending in ``*`` or a regex."""
    if isinstance(value, dict):
        r.mapping(value, path, ("regex",), go_on=True)
        if "regex" not in value:
            raise r.fail(path, "expected a number, a prefix ending in '*', or {regex: ...}")
        return "re:" + r.text(value["regex"], (*path, "regex"))
    if not numbers:
        text = r.label(value, path)
        if text.startswith("re:"):
            raise r.fail(path, "expected a client id, a prefix ending in '*', or {regex: ...}")
        return text
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"+{value}"
    text = r.text(value, path)
    body = text[:-1] if text.endswith("*") else text
    if body and not re.fullmatch(r"\+?\d+", body):
        raise r.fail(path, f"expected an E.164 number or a prefix ending in '*', got {text!r}")
    if body and not body.startswith("+"):
        text = "+" + text
    return text


def _rule(r: _Reader, data: Any, path: KeyPath) -> Rule:
    """One rule; every problem in it is noted (each field is checked, whatever the
    others), and _Problem is raised at the end if there was any."""
    if isinstance(data, dict) and True in data and "on" not in data:
        # YAML 1.1 reads a plain ``on:`` key as the boolean true (its line is kept
        # under "on", the key as written).
        data = {("on" if key is True else key): value for key, value in data.items()}
    before = r.found
    rule = r.mapping(data, path, _RULE_KEYS, go_on=True)
    on = frozenset({Endpoint.CREATE})
    if "on" in rule:
        with r.collect():
            on = _on(r, rule["on"], (*path, "on"))
    create = on == {Endpoint.CREATE}
    match = "*"
    if "match" not in rule:
        r.note(r.fail(path, "missing field 'match'"))
    else:
        with r.collect():
            match = _match(r, rule["match"], (*path, "match"), numbers=on != {Endpoint.TOKEN})
    chance = 1.0
    if "chance" in rule:
        with r.collect():
            chance = r.number(rule["chance"], (*path, "chance"), 0, 1)
    note = ""
    if rule.get("note") is not None:
        with r.collect():
            note = r.label(rule["note"], (*path, "note"), MAX_NOTE_CHARS)
    steps: tuple[Fate, ...] = (Fate(),)
    if "sequence" in rule:
        for extra in (k for k in _FATE_KEYS if k in rule):
            r.note(r.fail((*path, extra), "put outcomes inside 'sequence', or drop 'sequence'"))
        items = rule["sequence"]
        if not isinstance(items, list) or not items:
            r.note(r.fail((*path, "sequence"), "expected a non-empty list of outcomes"))
        else:
            found = []
            for i, item in enumerate(items):
                with r.collect():
                    where = (*path, "sequence", i)
                    mapping = r.mapping(item, where, _FATE_KEYS, go_on=True)
                    found.append(_fate(r, mapping, where, create))
            steps = tuple(found) or steps
    else:
        steps = (_fate(r, rule, path, create),)
    if r.found != before:
        raise _Noted()
    try:
        return Rule.of(match, *steps, chance=chance, note=note, on=on)
    except ValueError as exc:
        raise r.fail((*path, "match"), str(exc)) from None


_NETWORK_KEYS = (
    "rules", "seed", "magic_numbers", "clock", "defaults", "rate_limit", "balance", "fixed_pins",
)  # fmt: skip


def _network(r: _Reader, data: Any) -> NetworkSpec:
    """The network half; every problem in it is noted, each field checked whatever the
    others (one mistake does not hide the next)."""
    path: KeyPath = ("network",)
    net = r.mapping(data, path, _NETWORK_KEYS, go_on=True)
    rules_data = net.get("rules") or []
    found: list[Rule] = []
    if not isinstance(rules_data, list):
        r.note(r.fail((*path, "rules"), f"expected a list of rules, got {_kind(rules_data)}"))
        rules_data = []
    for i, item in enumerate(rules_data):
        with r.collect():  # each rule's problems are reported
            found.append(_rule(r, item, (*path, "rules", i)))
    rules = tuple(found)
    seed = None
    if net.get("seed") is not None:
        with r.collect():
            seed = r.integer(net["seed"], (*path, "seed"))
            if not 0 <= seed <= MAX_SEED:
                raise r.fail((*path, "seed"), f"expected a whole number from 0 to {MAX_SEED}")
    magic = True
    if "magic_numbers" in net:
        with r.collect():
            magic = r.boolean(net["magic_numbers"], (*path, "magic_numbers"))
    frozen: bool | None = None
    start: float | None = None
    if "clock" in net:
        with r.collect():
            clock = r.mapping(net["clock"], (*path, "clock"), ("frozen", "start"), go_on=True)
            if "frozen" in clock:
                with r.collect():
                    frozen = r.boolean(clock["frozen"], (*path, "clock", "frozen"))
            if "start" in clock:
                with r.collect():
                    start = _time(r, clock["start"], (*path, "clock", "start"))
    defaults: dict[str, Any] = {}
    if "defaults" in net:
        with r.collect():
            defaults = _defaults(r, net["defaults"], (*path, "defaults"))
    rate: tuple[int | None, float] | None = None
    if "rate_limit" in net:
        with r.collect():
            rate = _rate_limit(r, net["rate_limit"], (*path, "rate_limit"))
    balance = None
    if "balance" in net:
        with r.collect():
            balance = r.number(net["balance"], (*path, "balance"), 0, 1e12)
    fixed: tuple[tuple[str, str], ...] = ()
    if "fixed_pins" in net:
        with r.collect():
            fixed = _fixed_pins(r, net["fixed_pins"], (*path, "fixed_pins"))
    return NetworkSpec(
        Network(rules, seed, magic), defaults, frozen, start, rate, balance, fixed_pins=fixed
    )


def _defaults(r: _Reader, value: Any, path: KeyPath) -> dict[str, Any]:
    """``network.defaults``: each field checked on its own (every bad one reported),
    then together (e.g. a template too long for the PIN length)."""
    given = r.mapping(value, path, tuple(DEFAULT_FIELDS), go_on=True)
    known = {k: v for k, v in given.items() if k in DEFAULT_FIELDS}
    defaults = {DEFAULT_FIELDS[k]: v for k, v in known.items()}
    before = r.found
    for key, field_value in known.items():
        with r.collect():
            _check_defaults(r, {DEFAULT_FIELDS[key]: field_value}, known, path, key)
    if r.found == before:
        _check_defaults(r, defaults, known, path, next(iter(known), ""))
    return defaults


def _check_defaults(
    r: _Reader, defaults: dict[str, Any], given: dict[str, Any], path: KeyPath, key: str
) -> None:
    try:
        check_defaults(replace(OtpDefaults(), **defaults))
    except (ProviderError, TypeError) as exc:
        message = exc.message if isinstance(exc, ProviderError) else "wrong type"
        param = exc.param if isinstance(exc, ProviderError) else None
        raise r.fail((*path, param if param in given else key), message) from None


def _time(r: _Reader, value: Any, path: KeyPath) -> float:
    """An ISO 8601 time: quoted text, or a timestamp YAML read as a date or datetime."""
    if isinstance(value, date):  # datetime too
        value = value.isoformat()
    if not isinstance(value, str):
        raise r.fail(path, f"expected an ISO 8601 time, got {_kind(value)}")
    try:
        return parse_iso(r.text(value, path))
    except ValueError as exc:
        raise r.fail(path, str(exc)) from None


def _fixed_pins(r: _Reader, value: Any, path: KeyPath) -> tuple[tuple[str, str], ...]:
    """``fixed_pins: [{match: <as in rules>, pin: "123456"}, ...]``; every entry's
    problems are noted."""
    if not isinstance(value, list):
        raise r.fail(path, f"expected a list of {{match, pin}}, got {_kind(value)}")
    found = []
    for i, item in enumerate(value):
        with r.collect():
            found.append(_fixed_pin(r, item, (*path, i)))
    return tuple(found)


def _fixed_pin(r: _Reader, item: Any, path: KeyPath) -> tuple[str, str]:
    before = r.found
    entry = r.mapping(item, path, ("match", "pin"), go_on=True)
    for needed in ("match", "pin"):
        if needed not in entry:
            r.note(r.fail(path, f"missing field {needed!r}"))
    match, pin = "", ""
    if "match" in entry:
        with r.collect():
            match = _match(r, entry["match"], (*path, "match"))
            try:
                Rule.of(match)
            except ValueError as exc:
                raise r.fail((*path, "match"), str(exc)) from None
    if "pin" in entry:
        with r.collect():
            given = entry["pin"]
            if not isinstance(given, str):
                raise r.fail(
                    (*path, "pin"),
                    f"expected the PIN as quoted text such as '123456', got {_kind(given)}",
                )
            try:
                pin = check_fixed(given)
            except ValueError as exc:
                raise r.fail((*path, "pin"), str(exc)) from None
    if r.found != before:
        raise _Noted()
    return (match, pin)


def _rate_limit(r: _Reader, value: Any, path: KeyPath) -> tuple[int | None, float]:
    if value is False or value == "off":
        return (None, 60.0)
    if isinstance(value, int) and not isinstance(value, bool):
        return (int(r.number(value, path, 1, 10**9)), 60.0)
    data = r.mapping(value, path, ("limit", "window"), go_on=True)
    limit, window = 1, 60.0
    if "limit" not in data:
        r.note(r.fail(path, "missing field 'limit'"))
    else:
        with r.collect():
            limit = int(r.number(data["limit"], (*path, "limit"), 1, 10**9))
    with r.collect():
        window = r.number(data.get("window", 60), (*path, "window"), 0.001, 86400)
    return (limit, window)


# -- the steps half ----------------------------------------------------------------------

# A field's check: raises (``r.fail``) if the value does not fit the step's schema.
_Check = Callable[["_Reader", Any, KeyPath], object]

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# What a callback item's status can be: an OTP's final status.
CALLBACK_STATUSES = tuple(s.value for s in Status if s is not Status.PENDING)
MAX_CALLBACK_COUNT = 100_000


def _text_value(r: _Reader, value: Any, path: KeyPath) -> object:
    """Text (printed into a URL or a header by the runner)."""
    return r.scalar(value, path)


def _any_value(r: _Reader, value: Any, path: KeyPath) -> object:
    """Sent as it is (the simulator answers a bad one, which a scenario may expect)."""
    return value


def _number_value(low: float, high: float) -> _Check:
    return lambda r, value, path: r.number(value, path, low, high)


def _whole_value(low: int, high: int) -> _Check:
    def check(r: _Reader, value: Any, path: KeyPath) -> object:
        number = r.integer(value, path)
        if not low <= number <= high:
            raise r.fail(path, f"expected a whole number from {low} to {high}, got {number}")
        return number

    return check


def _one_of(choices: tuple[str, ...], *, any_case: bool = False) -> _Check:
    def check(r: _Reader, value: Any, path: KeyPath) -> object:
        given = r.label(value, path)
        if (given.upper() if any_case else given) not in choices:
            raise r.fail(path, f"expected one of: {', '.join(choices)}, got {_kind(value)}")
        return value

    return check


def _path_value(r: _Reader, value: Any, path: KeyPath) -> object:
    text = r.label(value, path)
    if not text.startswith("/"):
        raise r.fail(path, f"expected a path starting with '/', got {text[:80]!r}")
    return text


def _headers_value(r: _Reader, value: Any, path: KeyPath) -> object:
    if not isinstance(value, dict):
        raise r.fail(path, f"expected a mapping, got {_kind(value)}")
    for key, item in value.items():
        with r.collect():
            r.scalar(item, (*path, str(key)))
    return value


def _time_value(r: _Reader, value: Any, path: KeyPath) -> object:
    text = r.text(value, path)
    try:
        parse_iso(text)
    except ValueError as exc:
        raise r.fail(path, str(exc)) from None
    return text


def _status_value(r: _Reader, value: Any, path: KeyPath) -> object:
    """An HTTP status (``503``) or a class (``"5xx"``)."""
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    if isinstance(value, str) and parse_status(value) is not None:
        return value
    raise r.fail(
        path, f"expected an HTTP status (e.g. 503) or a class (e.g. 5xx), got {_kind(value)}"
    )


def _nothing(r: _Reader, value: Any, path: KeyPath) -> object:
    if value not in (None, {}, True):
        raise r.fail(path, f"expected nothing, got {_kind(value)}")
    return value


# kind -> (fields that must be there, every field with its check); None: any mapping (a
# POST /otp body, sent as it is).
_STEP_ARGS: dict[str, tuple[tuple[str, ...], dict[str, _Check]] | None] = {
    "create": None,
    "get": (("otpId",), {"otpId": _text_value}),
    "verify": (("otpId", "pin"), {"otpId": _text_value, "pin": _any_value}),
    "cancel": (("otpId",), {"otpId": _text_value}),
    "latest": ((), {
        "phoneNumber": _text_value, "otpId": _text_value, "wait": _number_value(0, MAX_WAIT),
    }),
    "messages": ((), {"phoneNumber": _text_value, "otpId": _text_value}),
    "expect_callback": ((), {
        "otpId": _text_value, "status": _one_of(CALLBACK_STATUSES),
        "within": _number_value(0, MAX_WAIT), "count": _whole_value(1, MAX_CALLBACK_COUNT),
    }),
    "expect_request": (("path",), {
        "path": _path_value, "method": _one_of(HTTP_METHODS, any_case=True),
        "status": _status_value, "times": _whole_value(0, MAX_CALLBACK_COUNT),
        "body": _any_value, "phoneNumber": _text_value, "otpId": _text_value,
        "within": _number_value(0, MAX_WAIT),
    }),
    "request": (("method", "path"), {
        "method": _one_of(HTTP_METHODS, any_case=True), "path": _path_value,
        "body": _any_value, "headers": _headers_value,
    }),
}  # fmt: skip
# kind -> the check of its value, for the steps whose value is not a mapping.
_SCALAR_ARGS: dict[str, _Check] = {
    "advance": _number_value(-(10**9), 10**9),
    "set_clock": _time_value,
    "wait": _number_value(0, MAX_WAIT),
    "reset": _nothing,
}
STEP_KINDS = (*_STEP_ARGS, *_SCALAR_ARGS)
_STEP_KEYS = (*STEP_KINDS, "as", "expect", "name")


def _check_args(r: _Reader, kind: str, args: Any, path: KeyPath, *, rendered: bool) -> Any:
    """Check a step's value against its kind's schema (types, ranges, choices, required
    fields), noting each problem; returns the value (``{}`` for a mapping step given
    nothing). Before the run (``rendered`` false) a template's type cannot be known: it
    is checked once rendered, by :func:`check_rendered`."""

    def unknown_yet(value: Any) -> bool:
        return not rendered and isinstance(value, str) and is_template(value)

    if kind in _SCALAR_ARGS:
        if not unknown_yet(args):
            with r.collect():
                _SCALAR_ARGS[kind](r, args, path)
        return args
    spec = _STEP_ARGS[kind]
    if args is None and spec is not None and not spec[0]:
        args = {}
    if not isinstance(args, dict):
        r.note(r.fail(path, f"expected a mapping, got {_kind(args)}"))
        return args
    if spec is None:
        return args
    required, fields = spec
    for key, value in args.items():
        check = fields.get(key)
        if check is None:
            allowed = ", ".join(fields)
            r.note(r.fail((*path, str(key)), f"unknown key (expected one of: {allowed})"))
        elif not unknown_yet(value) and (value is not None or key in required):
            with r.collect():
                check(r, value, (*path, key))
    for needed in required:
        if needed not in args:
            r.note(r.fail(path, f"missing field {needed!r}"))
    return args


def check_rendered(filename: str, step: Step, args: Any) -> Any:
    """A step's value with its templates rendered, checked as the file was before the
    run; raises ScenarioInvalid (``file:line: where: what was expected``) if it does not
    fit, rather than letting the step fail on the wrong type half-way."""
    path: KeyPath = ("steps", step.index - 1, step.kind)
    r = _Reader(YamlDoc(None, filename, {path: step.line}))
    args = _check_args(r, step.kind, args, path, rendered=True)
    r.raise_problems()
    return args


def _templates(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if is_template(value) else []
    if isinstance(value, dict):
        return [t for v in value.values() for t in _templates(v)]
    if isinstance(value, list):
        return [t for v in value for t in _templates(v)]
    return []


def _check_references(r: _Reader, value: Any, path: KeyPath, known: set[str]) -> None:
    for template in _templates(value):
        try:
            names = check_template(template)
        except TemplateProblem as exc:
            r.note(r.fail(path, f"bad template {template[:80]!r}: {exc}"))
            continue
        unknown = sorted(names - known)
        if unknown:
            r.note(
                r.fail(
                    path,
                    f"bad reference {unknown[0]!r} in {template!r} "
                    f"(known here: {', '.join(sorted(known))})",
                )
            )


def _expect(r: _Reader, value: Any, path: KeyPath) -> Expect:
    data = r.mapping(value, path, ("status", "error", "body"), go_on=True)
    status = None
    if "status" in data:
        with r.collect():
            status = int(r.number(data["status"], (*path, "status"), 100, 599))
    error = None
    if "error" in data:
        with r.collect():
            error = r.mapping(
                data["error"], (*path, "error"), ("type", "code", "message"), go_on=True
            )
            for key, item in error.items():
                with r.collect():
                    r.scalar(item, (*path, "error", key))
    return Expect(status, error, data.get("body"))


def _step(r: _Reader, data: Any, index: int, known: set[str]) -> Step | None:
    """One step, or None if it has problems (each is noted). A name it saves (``as``) is
    known to later steps either way: one mistake is reported once."""
    path: KeyPath = ("steps", index)
    before = r.found
    if not isinstance(data, dict):
        r.note(
            r.fail(
                path, f"expected a step (a mapping such as 'create: {{...}}'), got {_kind(data)}"
            )
        )
        return None
    kinds = [k for k in data if k in STEP_KINDS]
    unknown = [k for k in data if k not in _STEP_KEYS]
    for key in unknown:
        r.note(
            r.fail(
                (*path, str(key)),
                f"unknown step {key!r} (expected one of: {', '.join(STEP_KINDS)})",
            )
        )
    if len(kinds) > 1 or not (kinds or unknown):
        what = "no step kind" if not kinds else f"several step kinds ({', '.join(kinds)})"
        r.note(r.fail(path, f"expected exactly one step kind, got {what}"))
    kind = kinds[0] if len(kinds) == 1 else None
    args = None
    if kind is not None:
        arg_path: KeyPath = (*path, kind)
        args = _check_args(r, kind, data[kind], arg_path, rendered=False)
        _check_references(r, args, arg_path, known)
    expect = Expect()
    if "expect" in data:
        with r.collect():
            expect = _expect(r, data["expect"], (*path, "expect"))
        _check_references(r, data["expect"], (*path, "expect"), known)
    save_as = None
    if "as" in data:
        with r.collect():
            given = r.text(data["as"], (*path, "as"))
            if not _NAME.match(given) or given in BUILTIN_NAMES:
                raise r.fail((*path, "as"), f"expected a name such as 'otp', got {given!r}")
            save_as = given
            known.add(save_as)
    name = None
    if data.get("name") is not None:
        with r.collect():
            name = r.label(data["name"], (*path, "name"), MAX_NAME_CHARS)
    if kind is None or r.found > before:
        return None
    return Step(index + 1, kind, args, r.doc.line(path), name, save_as, expect)


# -- the file ----------------------------------------------------------------------------

_TOP_KEYS = ("name", "description", "network", "steps", "api_key", "receiver")


def parse_scenario(text: str, filename: str) -> Scenario:
    """Parse and check a whole scenario; raises OtpsimError naming file and line if it is
    wrong: a :class:`ScenarioInvalid` with every problem, one line each, in file order."""
    if len(text.encode("utf-8")) > MAX_SCENARIO_BYTES:
        raise OtpsimError(f"{filename}:1: scenario is larger than {MAX_SCENARIO_BYTES} bytes")
    doc = load_yaml(text, filename)
    r = _Reader(doc)
    if doc.data is None:
        raise OtpsimError(f"{filename}:1: empty scenario (expected 'network', 'steps' or both)")
    top = r.mapping(doc.data, (), _TOP_KEYS, go_on=True)
    if "network" not in top and "steps" not in top and not r.found:
        raise r.fail((), "expected 'network', 'steps' or both")
    network = None
    if top.get("network") is not None:
        with r.collect():
            network = _network(r, top["network"])
    steps: list[Step] = []
    if "steps" in top:
        items = top["steps"]
        if isinstance(items, list):
            known = set(BUILTIN_NAMES)
            found = [_step(r, item, i, known) for i, item in enumerate(items)]
            steps = [step for step in found if step is not None]
        else:
            r.note(r.fail(("steps",), f"expected a list of steps, got {_kind(items)}"))
    responses: tuple[int, ...] = ()
    if "receiver" in top:
        with r.collect():
            responses = _responses(r, top["receiver"])
    name = Path(filename).stem
    if top.get("name") not in (None, ""):
        with r.collect():
            name = r.label(top["name"], ("name",), MAX_NAME_CHARS)
    description = ""
    if top.get("description") is not None:
        with r.collect():
            description = r.label(top["description"], ("description",), MAX_TEXT_CHARS)
    api_key = "otpsim-run"
    if "api_key" in top:
        with r.collect():
            api_key = r.text(top["api_key"], ("api_key",))
    r.raise_problems()
    return Scenario(
        path=filename,
        name=name,
        description=description,
        network=network,
        steps=tuple(steps),
        api_key=api_key,
        receiver_responses=responses,
    )


def _responses(r: _Reader, value: Any) -> tuple[int, ...]:
    receiver = r.mapping(value, ("receiver",), ("responses",), go_on=True)
    codes = receiver.get("responses") or []
    if not isinstance(codes, list):
        raise r.fail(("receiver", "responses"), "expected a list of HTTP status codes")
    found = []
    for i, code in enumerate(codes):
        with r.collect():
            found.append(int(r.number(code, ("receiver", "responses", i), 100, 599)))
    return tuple(found)


def load_scenario(path: str | Path) -> Scenario:
    """Read and parse a scenario file (or a shipped one, named ``builtin:NAME``)."""
    if isinstance(path, str) and builtin.is_reference(path):
        path = builtin.resolve_one(path)
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise OtpsimError(f"{name}: cannot read scenario: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise OtpsimError(f"{name}:1: scenario is not UTF-8 text") from None
    return parse_scenario(text, name)


def scenario_files(paths: list[str]) -> list[Path]:
    """Files named, and the ``*.yaml``/``*.yml`` files of directories named, in order;
    ``builtin:NAME`` names a shipped one, ``builtin:`` all of them."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if builtin.is_reference(given):
            found.extend(builtin.resolve(given))
        elif path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        elif path.exists():
            found.append(path)
        else:
            raise OtpsimError(f"{given}: no such file or directory")
    if not found:
        raise OtpsimError(f"no scenario files in {' '.join(paths)}")
    return found
