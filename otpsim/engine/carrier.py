"""The simulated network: where each SMS's fate is decided.

A :class:`Network` is a list of :class:`Rule` s, tried in order for the phone number of
each ``POST /otp``; the first rule that matches (and whose ``chance`` comes up) decides
the :class:`Fate`. With no rule matching, the SMS is delivered at once. A rule's
``steps`` form a sequence: the first request for a number gets the first step, the next
the second, and the last step repeats ("fail twice, then deliver").

A rule targets one or more endpoints (``on``: create, verify, status, cancel, token;
create by default). For ``create`` a rule matches the requested number; for verify,
status and cancel the OTP's number (an unknown OTP has none: only ``*`` rules apply);
for ``token`` the OAuth client id. Sequences count per rule, endpoint and number (or
client id).

Outcomes act at two moments:

* on the API call: ``reject`` (400 2020), ``error`` (HTTP 400, 401, 403, 404, 429, 500
  or 503), ``rate_limit`` (429), ``latency`` (the answer comes that many real seconds
  later), and connection faults (``fault``: reset, hang, truncated, garbage) that the
  HTTP side performs instead of answering;
* on the SMS: ``deliver`` (after ``delay`` seconds on the simulator clock) or
  ``undelivered`` (it never reaches the phone).

Any randomness (``chance``) comes from the network's ``seed``: the same seed and the same
requests give the same outcomes.

A built-in pack of magic numbers (:data:`MAGIC_RULES`, in the +1 500 555 range that
phone-number validation accepts) triggers each behaviour with no configuration.

Example::

    carrier = Carrier(Scheduler(clock))
    carrier.configure(Network(rules=(Rule.of("+4477009001*", Fate(Action.UNDELIVERED)),)))
    carrier.decide("+447700900123")   # Fate(action=Action.UNDELIVERED, ...)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from otpsim.domain.message import Message
from otpsim.engine.scheduler import Job, Kind, Scheduler

MAX_REGEX_CHARS: Final = 1000


class Regex:
    """A user's regular expression, run by RE2: linear time in the text whatever the
    pattern, so no pattern can stall the server (Python's ``re`` backtracks, and
    ``^(.*)*(.*)*(.*)*\\D$`` takes seconds per number). RE2 has no backreferences or
    look-around; such patterns are refused when the rule is made."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str) -> None:
        """Raises ValueError naming the problem when RE2 cannot run ``pattern``."""
        if len(pattern) > MAX_REGEX_CHARS:
            raise ValueError(
                f"invalid regular expression: longer than {MAX_REGEX_CHARS} characters"
            )
        import re2  # loaded with the first rule that has a regex, not at start-up

        options = re2.Options()
        options.log_errors = False  # the error is ours to report, once
        try:
            self._compiled = re2.compile(pattern, options)
        except re2.error as exc:
            detail = exc.args[0] if exc.args else "not valid"
            if isinstance(detail, bytes):
                detail = detail.decode("utf-8", "replace")
            raise ValueError(
                f"invalid regular expression: {detail} (RE2 syntax: no backreferences "
                "or look-around)"
            ) from None
        self.pattern = pattern

    def search(self, text: str) -> bool:
        return self._compiled.search(text) is not None


class Action(StrEnum):
    DELIVER = "deliver"  # on endpoints other than create: answer as usual
    UNDELIVERED = "undelivered"
    REJECT = "reject"
    ERROR = "error"
    RATE_LIMIT = "rate_limit"
    FAULT = "fault"  # a connection-level fault instead of an answer


class Endpoint(StrEnum):
    """The provider API calls a rule may target (``on``)."""

    CREATE = "create"  # POST /otp
    VERIFY = "verify"  # POST /otp/{otpId}
    STATUS = "status"  # GET /otp/{otpId}
    CANCEL = "cancel"  # DELETE /otp/{otpId}
    TOKEN = "token"  # POST /oauth/token


class FaultKind(StrEnum):
    """What a connection-level fault does to the connection (as WireMock's faults)."""

    RESET = "reset"  # closed at once without an answer (a TCP reset)
    HANG = "hang"  # held without an answer until the client gives up or a bound passes
    TRUNCATED = "truncated"  # an answer whose body is shorter than its Content-Length
    GARBAGE = "garbage"  # bytes that are not HTTP, then closed


# The HTTP statuses an ``error`` outcome may answer (each mapped to a catalog entry by
# the Simulator; docs/scenarios.md has the table).
ERROR_STATUSES: Final = (400, 401, 403, 404, 429, 500, 503)
SMS_ACTIONS: Final = frozenset({Action.UNDELIVERED, Action.REJECT})  # create only


@dataclass(frozen=True, slots=True)
class Fate:
    action: Action = Action.DELIVER
    delay: float = 0.0  # deliver: seconds on the simulator clock before the SMS arrives
    status: int = 500  # error: the HTTP status answered (one of ERROR_STATUSES)
    latency: float = 0.0  # real seconds the API takes to answer
    fault: FaultKind | None = None  # fault: what happens to the connection
    hang: float | None = None  # fault hang: seconds to hold (None: the server's bound)
    retry_after: int = 1  # a 429: its Retry-After, whole seconds

    @property
    def is_429(self) -> bool:
        return self.action is Action.RATE_LIMIT or (
            self.action is Action.ERROR and self.status == 429
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"action": self.action.value}
        if self.action is Action.DELIVER and self.delay:
            data["delay"] = self.delay
        if self.action is Action.ERROR:
            data["status"] = self.status
        if self.is_429 and self.retry_after != 1:
            data["retry_after"] = self.retry_after
        if self.fault is not None:
            data["fault"] = self.fault.value
            if self.hang is not None:
                data["hang"] = self.hang
        if self.latency:
            data["latency"] = self.latency
        return data


@dataclass(frozen=True, slots=True)
class Fault:
    """A connection-level fault the HTTP side performs instead of answering."""

    kind: FaultKind
    hang: float = 0.0  # hang: the most real seconds to hold the request (already bounded)


class FaultFired(Exception):
    """Raised by a verb whose answer is a connection fault (``POST /otp``): nothing was
    created; the HTTP side performs ``fault``."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(f"connection fault: {fault.kind.value}")
        self.fault = fault


_NO_RULE: Final = Fate()  # what a number no rule matches gets
_CREATE_ONLY: Final = frozenset({Endpoint.CREATE})


@dataclass(frozen=True, slots=True)
class Rule:
    """Which numbers (``match``), what happens (``steps``), how often (``chance``), and
    on which endpoints (``on``; ``create`` by default).

    ``match`` is an exact E.164 number, a prefix ending in ``*`` (``*`` alone: every
    number), or ``re:`` followed by a regular expression searched in the number (for
    ``token``: in the client id).
    """

    match: str
    steps: tuple[Fate, ...] = (Fate(),)
    chance: float = 1.0
    note: str = ""
    _regex: Regex | None = field(default=None, compare=False, repr=False)
    on: frozenset[Endpoint] = _CREATE_ONLY

    @classmethod
    def of(
        cls,
        match: str,
        *steps: Fate,
        chance: float = 1.0,
        note: str = "",
        on: Iterable[Endpoint] = _CREATE_ONLY,
    ) -> Rule:
        """A rule; raises ValueError when ``match`` is a bad regular expression, or an
        outcome does not fit an endpoint (an SMS outcome on anything but create)."""
        regex = Regex(match.removeprefix("re:")) if match.startswith("re:") else None
        endpoints = frozenset(on)
        if not endpoints:
            raise ValueError("a rule targets at least one endpoint")
        if endpoints != _CREATE_ONLY:
            for step in steps:
                if step.action in SMS_ACTIONS or step.delay:
                    raise ValueError(
                        f"{step.action.value if step.action in SMS_ACTIONS else 'delay'} "
                        "is an SMS outcome: only for 'on: create'"
                    )
        return cls(match, steps or (Fate(),), chance, note, regex, endpoints)

    @property
    def is_exact(self) -> bool:
        return self._regex is None and not self.match.endswith("*")

    def matches(self, phone: str) -> bool:
        if self._regex is not None:
            return self._regex.search(phone)
        if self.match.endswith("*"):
            return phone.startswith(self.match[:-1])
        return phone == self.match

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"match": self.match}
        if self.on != _CREATE_ONLY:
            data["on"] = [e.value for e in Endpoint if e in self.on]
        if len(self.steps) == 1:
            data.update(self.steps[0].to_json())
        else:
            data["sequence"] = [s.to_json() for s in self.steps]
        if self.chance < 1:
            data["chance"] = self.chance
        if self.note:
            data["note"] = self.note
        return data


# The labels of the scenario rules that decided something while the current request was
# handled. The request journal sets a fresh list per request (one asyncio task each);
# elsewhere it is None and nothing is recorded.
FIRED: ContextVar[list[str] | None] = ContextVar("otpsim_fired", default=None)


def note_fired(rule: Rule) -> None:
    """Record that ``rule`` decided something in the request being handled, if journaled."""
    fired = FIRED.get()
    if fired is not None:
        fired.append(rule.note or rule.match)


def _magic(last4: str, note: str, *steps: Fate) -> Rule:
    return Rule.of(f"+1500555{last4}", *steps, note=note)


MAGIC_RULES: tuple[Rule, ...] = (
    _magic("0000", "delivered at once"),
    _magic("0001", "rejected as an invalid number (400, 2020)", Fate(Action.REJECT)),
    _magic("0002", "never delivered (UNDELIVERED)", Fate(Action.UNDELIVERED)),
    _magic("0003", "delivered after 30 s of simulator time", Fate(delay=30)),
    _magic("0004", "delivered after 5 min of simulator time", Fate(delay=300)),
    _magic("0005", "the provider fails: HTTP 500", Fate(Action.ERROR, status=500)),
    _magic("0006", "the provider is unavailable: HTTP 503", Fate(Action.ERROR, status=503)),
    _magic("0007", "rate limited: HTTP 429", Fate(Action.RATE_LIMIT)),
    _magic(
        "0008",
        "HTTP 500 twice, then delivered",
        Fate(Action.ERROR, status=500),
        Fate(Action.ERROR, status=500),
        Fate(),
    ),
    _magic("0009", "the API answers after 2 s", Fate(latency=2.0)),
)


@dataclass(frozen=True, slots=True)
class Network:
    """How the simulated network behaves while a scenario is active."""

    rules: tuple[Rule, ...] = ()
    seed: int | None = None
    magic_numbers: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "rules": [r.to_json() for r in self.rules],
            "seed": self.seed,
            "magicNumbers": self.magic_numbers,
        }


class Carrier:
    def __init__(self, scheduler: Scheduler, *, delivers: bool = True) -> None:
        """``delivers``: this carrier runs the scheduler's SMS jobs (the simulator's
        main one); an account's own carrier (its scenario's rules) only decides."""
        self._scheduler = scheduler
        if delivers:
            scheduler.handle(Kind.SMS, self._arrive, self._on_its_way)
        self.network = Network()
        self._rng = random.Random()
        self._counters: dict[tuple[int, Endpoint, str], int] = {}
        self._exact: dict[tuple[Endpoint, str], list[int]] = {}
        self._general: dict[Endpoint, list[int]] = {}
        self._rules: tuple[Rule, ...] = ()
        self.configure(None)

    def configure(self, network: Network | None) -> None:
        """Use these rules from now on (None: only the magic numbers); sequences restart."""
        self.network = network or Network()
        self._rng = random.Random(self.network.seed)
        self._counters = {}
        # Which rules can match a number, per endpoint: exact ones by number, the others
        # always, so a request skips every exact rule (the magic numbers, say) naming
        # another number.
        self._exact = {}
        self._general = {endpoint: [] for endpoint in Endpoint}
        magic = MAGIC_RULES if self.network.magic_numbers else ()
        self._rules = self.network.rules + magic
        for index, rule in enumerate(self._rules):
            for endpoint in rule.on:
                if rule.is_exact:
                    self._exact.setdefault((endpoint, rule.match), []).append(index)
                else:
                    self._general[endpoint].append(index)

    def rules(self) -> tuple[Rule, ...]:
        """The scenario's rules, then the magic numbers (unless switched off)."""
        return self._rules

    def decide(self, subject: str | None, endpoint: Endpoint = Endpoint.CREATE) -> Fate:
        """The fate of the next ``endpoint`` request about ``subject`` (a phone number;
        for ``token`` a client id; None: unknown, which only ``*`` rules match). Counts
        sequence steps; notes the rule that decided (``note_fired``)."""
        rules = self.rules()
        general = self._general[endpoint]
        if subject is None:
            candidates = [i for i in general if rules[i].match == "*"]
        else:
            exact = self._exact.get((endpoint, subject))
            # Rule order decides; only rules that can match this subject are looked at.
            candidates = sorted([*exact, *general]) if exact else general
        for index in candidates:
            rule = rules[index]
            if subject is not None and not rule.matches(subject):
                continue
            if rule.chance < 1 and self._rng.random() >= rule.chance:
                continue
            key = (index, endpoint, subject or "")
            step = self._counters.get(key, 0)
            self._counters[key] = step + 1
            note_fired(rule)
            return rule.steps[min(step, len(rule.steps) - 1)]
        return _NO_RULE

    # -- the SMS's journey -------------------------------------------------------------

    def submit(
        self,
        message: Message,
        outcome: Fate,
        on_delivered: Callable[[Message], None],
        on_undelivered: Callable[[Message], None],
    ) -> None:
        """Hand an SMS to the network; the callbacks run when its fate is sealed (a
        delayed SMS is a job on the scheduler, delivered at exactly its due time)."""
        now = self._scheduler.now()
        if outcome.action is Action.UNDELIVERED:
            message.fail()
            on_undelivered(message)
            return
        if outcome.delay <= 0:
            message.deliver(now)
            on_delivered(message)
            return
        message.deliver_at = now + outcome.delay
        self.schedule(message, on_delivered)

    def schedule(self, message: Message, on_delivered: Callable[[Message], None]) -> None:
        """Deliver a QUEUED SMS at its ``deliver_at`` (e.g. again after a restart)."""
        due = message.deliver_at if message.deliver_at is not None else self._scheduler.now()
        self._scheduler.at(due, Kind.SMS, message.message_id, (message, on_delivered))

    def _arrive(self, job: Job) -> None:
        message: Message
        on_delivered: Callable[[Message], None]
        message, on_delivered = job.ref  # type: ignore[misc]
        message.deliver(job.due)
        on_delivered(message)

    @staticmethod
    def _on_its_way(job: Job) -> bool:
        message: Message = job.ref[0]  # type: ignore[index]
        return message.delivered_at is None

    def forget(self, account: str | None = None) -> None:
        """Drop SMS still on their way (a reset), of one account or of everyone."""
        if account is None:
            self._scheduler.clear(Kind.SMS)
            return
        self._scheduler.cancel_where(Kind.SMS, lambda job: job.ref[0].account == account)  # type: ignore[index]
