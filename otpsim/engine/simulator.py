"""The simulator: the engine's one face, a narrow API of verbs.

Behind it: the domain (OTPs, messages), the store, the carrier, credentials, the rate
limiter, balances, the clock and ONE scheduler of timed jobs. It validates through the
domain, records in the store, hands SMS to the carrier and announces every change on the
event bus. Front ends (the HTTP handlers, the scenario runner through HTTP, the pytest
plugin, the CLI) call its verbs and read event payloads; they never reach its
collaborators (``tests/test_layers.py`` checks this).

Every verb first runs the jobs already due (an SMS whose delay is over, an OTP past its
TTL), in due-time order, so what a verb sees is what time has caused, in the order it
was caused.

Example::

    sim = Simulator(Settings(), clock=Clock(frozen=True))
    sim.recover()                               # a restart: what the store kept
    otp = await sim.create_otp({"phoneNumber": "+33612345678"}, account="key")
    pin = sim.latest_message(otp_id=otp.otp_id).pin
    sim.verify(otp.otp_id, {"pin": pin})
    sim.move_clock(advance=600)                 # every job due in between, in order
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from otpsim import entropy
from otpsim.clock import Clock, ClockView, iso, parse_iso
from otpsim.config import Settings
from otpsim.domain import phones, pins
from otpsim.domain.balance import Balances
from otpsim.domain.defaults import OtpDefaults
from otpsim.domain.journal import RequestQuery, RequestRecord
from otpsim.domain.message import Message, SmsStatus
from otpsim.domain.otp import Otp, Status, Verdict
from otpsim.domain.request import parse_new_otp
from otpsim.domain.sms import render, segment_for
from otpsim.engine.auth import Authenticator, Principal
from otpsim.engine.carrier import (
    Action,
    Carrier,
    Endpoint,
    Fate,
    Fault,
    FaultFired,
    FaultKind,
    Rule,
)
from otpsim.engine.network import NetworkSpec
from otpsim.engine.ratelimit import RateLimiter
from otpsim.engine.scheduler import Job, Kind, Scheduler, Timers
from otpsim.errors import E, ErrorSpec, ProviderError
from otpsim.events import Event, EventBus, Listener
from otpsim.store import DeliveryLog, Store
from otpsim.store.memory import MemoryStore
from otpsim.store.retention import Retention

# How a scenario rule's latency is waited: ``pause(seconds)``, which may return early.
Pause = Callable[[float], Awaitable[None]]

# Every clock (the shared one and each account's) stays within these, as ISO 8601 and
# the store can show them: 1970-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
CLOCK_MIN, CLOCK_MAX = 0.0, 253402300799.0

# An endpoint's name to the Endpoint (a dict read: ``Endpoint(name)`` costs a call into
# the enum machinery on every verify, status and cancel).
_ENDPOINTS: dict[str, Endpoint] = {endpoint.value: endpoint for endpoint in Endpoint}

_T = TypeVar("_T")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# The variant's hex digit (byte 8's high nibble, its top two bits set to 10) per digit.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def uuid4_text(raw: bytes) -> str:
    """16 random bytes as a UUID v4 string (as ``str(uuid.UUID(bytes=..., version=4))``
    would give, without building the object: it is on every request's path)."""
    h = raw.hex()  # version 4: digit 12; the RFC 4122 variant: digit 16
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


@dataclass(slots=True)  # not frozen: its __init__ would set each field through
class Caller:  # object.__setattr__ (three times the cost, once per request); never changed
    """Who a provider API request says it is, as the HTTP layer read it."""

    address: str | None  # the peer: the rate budget's key when nothing else is known
    api_key: str | None = None
    bearer: str | None = None
    token_request: bool = False  # POST /oauth/token: checked, then budgeted by client id
    client_id: str | None = None  # its HTTP Basic client id
    client_secret: str | None = field(default=None, repr=False)  # ... and its secret
    problem: ProviderError | None = None  # credentials that could not even be read


@dataclass(slots=True)  # not frozen, as Caller: built once per request, never changed
class Admission:
    """Whether a request may proceed: its caller, its rate headers (for whatever the
    answer turns out to be), and the error to answer instead, if any."""

    principal: Principal | None
    headers: dict[str, str]
    error: ProviderError | None = None


@dataclass(frozen=True, slots=True)
class Recovery:
    """What :meth:`Simulator.recover` found in the store."""

    clock_restored: bool  # the clock came back (a restart with --db)
    clock: float  # the simulator's time after recovery
    queued_sms: int  # SMS still on their way, scheduled again
    pending_otps: int  # OTPs whose expiry was scheduled again


def _fixed_pin_rules(entries: tuple[tuple[str, str], ...]) -> tuple[tuple[Rule, str], ...]:
    """(match, PIN) pairs as rules, matched with the carrier rules' own syntax."""
    return tuple((Rule.of(match), pin) for match, pin in entries)


def _error_spec(status: int, endpoint: Endpoint) -> ErrorSpec:
    """The catalog entry a rule's ``error: STATUS`` answers on ``endpoint`` (the table in
    docs/scenarios.md): the provider's own where one fits, else otpsim's 1038/1039."""
    token = endpoint is Endpoint.TOKEN
    if status == 400:
        return E.OAUTH_INVALID_REQUEST if token else E.FAULT_REFUSED
    if status == 401:
        return E.OAUTH_INVALID_CLIENT if token else E.AUTH_BAD_KEY
    if status == 403:
        return E.FAULT_FORBIDDEN
    if status == 404:
        on_an_otp = endpoint in (Endpoint.VERIFY, Endpoint.STATUS, Endpoint.CANCEL)
        return E.OTP_NOT_FOUND if on_an_otp else E.ROUTE_NOT_FOUND
    if status == 503:
        return E.SERVICE_UNAVAILABLE
    return E.SERVER_ERROR


def _rules_in(network: _Network | NetworkSpec | None) -> int:
    """How many rules (carrier rules and fixed PINs) a network model holds."""
    spec = network.spec if isinstance(network, _Network) else network
    return 0 if spec is None else len(spec.carrier.rules) + len(spec.fixed_pins)


@dataclass(slots=True)
class _Network:
    """One network model in force: the global one, or an account's own (its scenario
    replaces the global one for that account, wholly). Each has its own carrier (rule
    sequences and seeded chance), rate budgets, OTP defaults and fixed PINs."""

    carrier: Carrier
    limiter: RateLimiter
    otp_defaults: OtpDefaults
    fixed_pins: tuple[tuple[Rule, str], ...]
    spec: NetworkSpec | None = None
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.spec is None:
            return {"active": False, "name": None, "network": None}
        return {"active": True, "name": self.name, "network": self.spec.to_json()}


class Simulator:
    """The engine's face. Construct it, call :meth:`recover` once (a restart), run
    :meth:`run` in the background, and call verbs."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        store: Store | None = None,
        bus: EventBus | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock or Clock(
            start=None if settings.clock_start is None else parse_iso(settings.clock_start),
            frozen=settings.clock_frozen,
        )
        # None means the OS CSPRNG (secrets); a seeded Random replays a run exactly.
        self._rng = (
            rng
            if rng is not None
            else (random.Random(settings.seed) if settings.seed is not None else None)
        )
        self._store: Store = (
            store
            if store is not None
            else MemoryStore(
                Retention(settings.max_messages, settings.max_age, settings.max_requests)
            )
        )
        self._store.retention.now = self._clock.time  # age on the shared clock
        self._bus = bus or EventBus()
        self._scheduler = Scheduler(self._clock, compact_above=2 * settings.max_messages + 1024)
        self._scheduler.handle(Kind.EXPIRY, self._expire_job, self._expiry_pending)
        # Each PENDING OTP's expiry job, oldest first (no entry: nothing to expire), so
        # that telling a stale job needs no store read (see _expiry_pending). An
        # OrderedDict: dropping the oldest is O(1) (``next(iter(dict))`` walks the deleted
        # slots at a plain dict's front: ~40 us per OTP with 100,000 pending).
        self._expiring: OrderedDict[str, Job] = OrderedDict()
        self._prices: dict[int, float] = {}  # price per number of parts (settings are frozen)
        self._scheduler.handle(Kind.TOKEN, self._token_job, self._token_kept)
        self._carrier = Carrier(self._scheduler)  # runs every SMS job, whoever decided it
        self._message_seq = itertools.count(1)
        self._request_seq = itertools.count(1)
        self._recovery: Recovery | None = None
        self._auth = Authenticator(settings, self._clock, self._rng)
        self._limiter = RateLimiter(self._clock, settings.rate_limit, settings.rate_limit_window)
        self._balances = Balances(settings.default_balance, settings.account_balances)
        self._no_coverage = frozenset(settings.no_coverage)
        self._configured_pins = _fixed_pin_rules(settings.fixed_pins)
        # The global network (every account without its own), and accounts' own ones.
        self._global = _Network(
            self._carrier, self._limiter, settings.otp_defaults, self._configured_pins
        )
        self._own: dict[str, _Network] = {}
        self._own_rules = 0  # rules (and fixed PINs) in all of them: max_account_rules
        self._pause: Pause = asyncio.sleep

    def set_pause(self, pause: Pause) -> None:
        """How every rule's ``latency`` is waited (default: ``asyncio.sleep``). The
        server's holds a ``--max-streams`` slot and returns early when pre-empted or
        stopping: the request then goes on and is answered at once."""
        self._pause = pause

    # -- wiring: what the server's components get (never the whole simulator) -------------

    @property
    def bus(self) -> EventBus:
        """The event bus, to subscribe to (the live hub, the dispatcher, metrics, logs)."""
        return self._bus

    @property
    def timers(self) -> Timers:
        """The scheduler's narrow face: the simulator's time, and jobs of one's own."""
        return self._scheduler

    @property
    def delivery_log(self) -> DeliveryLog | None:
        """Where callback deliveries and the outbox are kept across restarts (None: the
        store keeps nothing across restarts)."""
        return self._store.journal

    def subscribe(self, listener: Listener, *types: str) -> Callable[[], None]:
        """Hear every event (of ``types``, if given); returns a function that stops it."""
        return self._bus.subscribe(listener, *types)

    # -- lifetime ----------------------------------------------------------------------

    def recover(self) -> Recovery:
        """A restart: bring back what the store kept, once, before serving.

        The clock as it was saved; SMS still on their way and OTPs still pending, each
        scheduled again at its own due time (jobs that came due while the simulator was
        down run at the next pass, in order); message numbering after the newest. From
        here on every clock change is saved.
        """
        if self._recovery is not None:
            return self._recovery
        journal = self._store.journal
        saved = journal.load_clock() if journal is not None else None
        if saved is not None:
            self._clock.restore(saved)
        if journal is not None:
            if saved is None:  # a new file: its clock is kept from the start (a frozen
                journal.save_clock(self._clock.state())  # one must not jump at a restart)
            self._clock.on_change = lambda: journal.save_clock(self._clock.state())
        queued = self._store.queued_messages()
        for message in queued:
            self._carrier.schedule(message, self._delivered)
        pending = sorted(self._store.pending_otps(), key=lambda otp: otp.created_at)
        for otp in pending:
            self._expect_expiry(otp)
        newest = self._store.list_messages(limit=1)
        self._message_seq = itertools.count(newest[0].seq + 1 if newest else 1)
        self._request_seq = itertools.count(self._store.last_request_seq() + 1)
        if newest and self._rng is not None:
            # A seeded run continuing a file that already holds its ids: a stream of its
            # own (from the seed and where the file stands), or the restart would draw
            # the first run's ids again and write over its OTPs and messages.
            base = self.settings.seed if self.settings.seed is not None else "rng"
            self._rng.seed(f"{base}:{newest[0].seq}")
        self._recovery = Recovery(saved is not None, self._clock.time(), len(queued), len(pending))
        return self._recovery

    async def run(self) -> None:
        """Run forever: every timed job (SMS delivery, expiry, callback attempt, token
        expiry) when the simulator clock reaches it."""
        await self._scheduler.run()

    async def wait_durable(self) -> None:
        """Return once everything changed so far would survive a crash."""
        await self._store.durable()

    def close(self) -> None:
        self._store.close()

    def _catch_up(self) -> None:
        """Run every job already due, in due-time order (each at its own time)."""
        self._scheduler.run_due()

    # -- ids ---------------------------------------------------------------------------

    def new_id(self) -> str:
        """A random UUID v4 (from the OS CSPRNG, or from the seed)."""
        if self._rng is None:
            return uuid4_text(entropy.token_bytes(16))
        return uuid4_text(self._rng.getrandbits(128).to_bytes(16, "big"))

    # -- credentials and rate ----------------------------------------------------------

    def admit(self, caller: Caller, scope: str | None) -> Admission:
        """Who is calling, whether their rate budget allows one more request, and
        whether their credentials carry ``scope``.

        Token requests are checked first (client id and secret), then budgeted by
        client id on the client's own network (its account's scenario, else the global
        one); API calls by account, likewise; anything unidentified (a wrong secret
        included) by address on the global budget. The rate is counted even for a
        refused caller.
        """
        key = f"ip:{caller.address}"
        refused = caller.problem
        principal: Principal | None = None
        limiter = self._limiter
        if caller.token_request:
            if refused is None:
                try:
                    client = self._auth.check_client(caller.client_id, caller.client_secret)
                    key, limiter = f"client:{client}", self._network(client).limiter
                except ProviderError as exc:
                    refused = exc
        elif refused is None:
            try:
                principal = self._auth.authenticate(api_key=caller.api_key, bearer=caller.bearer)
                key = f"account:{principal.account}"
                limiter = self._network(principal.account).limiter
            except ProviderError as exc:
                refused = exc
        state = limiter.hit(key)
        headers = state.headers()
        if refused is None and not state.allowed:
            refused = ProviderError(E.RATE_LIMITED)
        if refused is None and principal is not None and scope is not None:
            try:
                principal.require(scope)
            except ProviderError as exc:
                refused = exc
        return Admission(principal if refused is None else None, headers, refused)

    def account_of(self, *, api_key: str | None, bearer: str | None) -> str | None:
        """The account these credentials authenticate as (None: they do not), without
        counting a request against any rate budget (the control API's own checks)."""
        try:
            return self._auth.authenticate(api_key=api_key, bearer=bearer).account
        except ProviderError:
            return None

    def check_client(self, client_id: str | None, secret: str | None) -> str:
        """``POST /oauth/token``: the client id, if these credentials are acceptable."""
        return self._auth.check_client(client_id, secret)

    def issue_token(self, client_id: str, scope: str | None) -> dict[str, object]:
        """``POST /oauth/token``: a bearer token (the response body); it expires on the
        simulator clock, at once when the clock jumps past it."""
        token = self._auth.issue_token(client_id, scope)
        value = str(token["access_token"])
        due = self._scheduler.now(client_id) + self.settings.token_ttl
        self._scheduler.at(due, Kind.TOKEN, value, view=client_id)
        return token

    def live_tokens(self) -> int:
        """How many OAuth tokens are live (issued, not yet expired or forgotten)."""
        return self._auth.live_tokens

    def _token_job(self, job: Job) -> None:
        token = self._auth.expire(job.key, job.due)
        if token is not None:
            self._bus.publish(
                "token.expired", {"clientId": token.client_id, "expiredAt": iso(job.due)}
            )

    def _token_kept(self, job: Job) -> bool:
        return self._auth.holds(job.key)

    # -- balances ------------------------------------------------------------------------

    def balance(self, account: str) -> dict[str, Any]:
        """An account's balance, as ``GET /account/balance`` shows it."""
        return self._balances.view(account)

    def set_balance(self, account: str, amount: float | None) -> dict[str, Any]:
        """Set an account's balance (None: unlimited) until the next reset."""
        self._balances.set(account, amount)
        return self._balances.view(account)

    def accounts_with_balance(self) -> int:
        """How many accounts have a balance of their own (set, or spent from; reading a
        balance creates none)."""
        return len(self._balances)

    # -- the provider API --------------------------------------------------------------

    async def create_otp(
        self,
        body: Mapping[str, Any],
        *,
        account: str,
        check_callback_url: Callable[[str], None] | None = None,
    ) -> Otp:
        """``POST /otp``: validate, ask the carrier, issue a PIN, and send it by SMS.

        ``check_callback_url`` may refuse the ``otpCallbackUrl`` by raising (the server
        refuses a URL that reaches the simulator itself), after the contract's checks.
        Everything is stamped on the account's clock (its own view, if it has one).
        """
        # One coroutine per request (this runs on every POST /otp): the body inline.
        with self._scheduler.acting_for(account):
            self._catch_up()
            network = self._network(account)
            request = parse_new_otp(body, network.otp_defaults)
            if check_callback_url is not None and request.callback_url is not None:
                check_callback_url(request.callback_url)
            self._check_coverage(request.phone_number, request.country_iso)
            fixed = (
                next(
                    (p for rule, p in network.fixed_pins if rule.matches(request.phone_number)),
                    None,
                )
                if network.fixed_pins
                else None
            )
            if fixed is not None:
                why = pins.misfit(fixed, request.pin_type, request.pin_length)
                if why is not None:
                    raise ProviderError(
                        E.FIXED_PIN_MISFIT,
                        f"The fixed PIN for {request.phone_number} ({len(fixed)} characters) does "
                        f"not fit this request: {why} (--fixed-pin, or the scenario's "
                        "network.fixed_pins)",
                    )
            # The price is known before the PIN: every PIN alphabet is GSM-7, one character
            # per PIN character, so any PIN of that length renders to the same parts.
            seg = segment_for(request.template, request.pin_length)
            cost = self._price(seg.parts)
            self._balances.check(account, cost)
            fate = self._carrier_for(account).decide(request.phone_number)
            action = fate.action  # the usual fate (see _act_on) without a coroutine
            if fate.latency or (action is not Action.DELIVER and action is not Action.UNDELIVERED):
                fault = await self._act_on(fate, Endpoint.CREATE, request.phone_number, account)
                if fault is not None:
                    raise FaultFired(fault)  # before anything is created: nothing was
            # Drawn even for a fixed PIN, so that a seeded run's other PINs stay the same.
            if self._rng is None:  # one read of the pool: the two ids, then the PIN's bytes
                raw = entropy.token_bytes(32 + 2 * request.pin_length)
                otp_id, message_id = uuid4_text(raw[:16]), uuid4_text(raw[16:32])
                pin = pins.from_random_bytes(request.pin_type, request.pin_length, raw[32:])
            else:  # a seeded run: the PIN, then the two ids, from the seed
                pin = pins.generate(request.pin_type, request.pin_length, self._rng)
                otp_id, message_id = self.new_id(), self.new_id()
            if fixed is not None:
                pin = fixed
            text = render(request.template, pin)
            now = self._scheduler.now()
            otp = Otp.issue(
                request,
                otp_id=otp_id,
                pin=pin,
                now=now,
                account=account,
                cost=cost,
                parts=seg.parts,
            )
            message = Message(  # positional (on every create): the fields' order
                message_id,
                otp.otp_id,
                account,
                request.phone_number,
                request.country_iso,
                request.sender,
                text,
                pin,
                seg.parts,
                seg.encoding,
                now,
                next(self._message_seq),
            )
            self._balances.charge(account, otp.cost)
            self._store.save_otp(otp)
            self._store.save_message(message)
            self._expect_expiry(otp)
            self._bus.publish("otp.created", otp.to_sim, subject=otp)
            self._bus.publish("message.created", message.to_json, subject=message)
            self._carrier.submit(message, fate, self._delivered, self._undelivered)
            return otp

    def _network(self, account: str | None) -> _Network:
        """The network model in force for ``account``: its own scenario's, else the
        global one."""
        if account is not None and self._own:
            own = self._own.get(account)
            if own is not None:
                return own
        return self._global

    def _carrier_for(self, account: str | None) -> Carrier:
        """The carrier deciding the fate of ``account``'s requests (every carrier lookup
        goes through here): its own scenario's rules, else the global ones."""
        return self._network(account).carrier

    def _price(self, parts: int) -> float:
        price = self._prices.get(parts)
        if price is None:
            price = self._prices[parts] = round(self.settings.price_per_part * parts, 6)
        return price

    def _check_coverage(self, phone: str, country_iso: str) -> None:
        """403 ``no_coverage`` 1119 for a number with no country (non-geographic: +800,
        +870, +882, ...; the provider's ``countryIso`` is always two letters) or in a
        country configured as not covered (``--no-coverage``)."""
        if not phones.has_country(country_iso):
            raise ProviderError(
                E.NO_COVERAGE,
                f"No coverage or restricted destination: {phone} is a non-geographic "
                "number (it belongs to no country)",
            )
        if country_iso in self._no_coverage:
            raise ProviderError(
                E.NO_COVERAGE,
                f"No coverage or restricted destination: {phone} ({country_iso}) is not covered",
            )

    def validate_number(self, raw: str) -> dict[str, Any]:
        """``GET /numbers/validate/{phoneNumber}``: the provider's DataNumberValidate.

        ``+33612424105``, ``33612424105`` and ``%2B33612424105`` (decoded by then) are
        the same number (a client that encodes ``%2B`` again, as the SDK does, still
        means ``+``); an invalid one is 400 ``invalid_param`` 1207. Free: no balance is
        drawn, and coverage is not checked (the number is valid wherever it is).
        """
        text = raw.strip()
        if text[:3].upper() == "%2B":
            text = "+" + text[3:]
        if not text.startswith("+"):
            text = "+" + text
        try:
            phone = phones.parse(text, None)
        except ProviderError:
            raise ProviderError(
                E.NUMBER_INVALID, f"The phone number is invalid: {raw[:64]!r}"
            ) from None
        if not phones.has_country(phone.country_iso):
            self._check_coverage(phone.e164, phone.country_iso)
        return {"data": phones.describe(phone)}

    async def fault_for(
        self, endpoint: str, *, account: str | None, subject: str | None
    ) -> Fault | None:
        """Whether a scenario rule makes this provider call fail before it is handled.

        ``endpoint`` is ``verify``, ``status``, ``cancel`` (``subject``: the OTP id; the
        rules match the OTP's number, none if the OTP is unknown to ``account``) or
        ``token`` (``subject``: the client id). Waits the rule's ``latency``, then
        raises ProviderError for an ``error``/``rate_limit`` outcome, returns the
        connection fault to perform, or None (answer as usual). Nothing about the OTP
        changes here: a refused verify consumes no attempt.
        """
        self._catch_up()
        where = _ENDPOINTS.get(endpoint) or Endpoint(endpoint)
        if where is Endpoint.CREATE:
            raise ValueError("POST /otp decides its fate in create_otp")
        target = subject
        about = f"the client id {subject!r}"
        if where is Endpoint.TOKEN and account is None:
            account = subject  # the client id is the account its tokens will act as
        if where is not Endpoint.TOKEN:
            target, about = None, "an unknown OTP"
            if subject is not None:
                key = subject.lower()
                otp = self._store.get_otp(key) if _UUID.match(key) else None
                if otp is not None and (account is None or otp.account == account):
                    phone = otp.request.phone_number
                    target, about = phone, phone
        fate = self._carrier_for(account).decide(target, where)
        return await self._act_on(fate, where, about, account)

    async def _act_on(
        self, fate: Fate, endpoint: Endpoint, about: str, account: str | None
    ) -> Fault | None:
        """Wait the fate's latency (bounded by ``max_wait``, through :meth:`set_pause`'s
        pause), then answer as it says: an error raised, a connection fault returned, or
        None (go on)."""
        action = fate.action
        if not fate.latency and (action is Action.DELIVER or action is Action.UNDELIVERED):
            return None  # the usual fate (no rule, or one that only delays the SMS)
        bound = self.settings.max_wait
        if fate.latency:
            await self._pause(min(fate.latency, bound))
            self._catch_up()
        if fate.action is Action.FAULT and fate.fault is not None:
            hang = bound if fate.hang is None else min(fate.hang, bound)
            return Fault(fate.fault, hang if fate.fault is FaultKind.HANG else 0.0)
        self._refuse_if_told(fate, endpoint, about, account)
        return None

    def _refuse_if_told(
        self, fate: Fate, endpoint: Endpoint, about: str, account: str | None
    ) -> None:
        """Answer as the carrier rule says: invalid number, an error status, or 429."""
        why = f"(simulated by the carrier rule for {about})"
        if fate.action is Action.REJECT:
            raise ProviderError(E.PHONE_INVALID, f"The phone number provided is invalid {why}")
        if fate.is_429:
            # As the rate limiter's answer (the window's end), and a Retry-After of the
            # rule's own (1 s unless told): urllib3, under the official SDK, sleeps that
            # long and retries a GET or DELETE by itself, up to 3 times.
            window = self._network(account).limiter.window
            reset = math.ceil(self._scheduler.now() / window) * window
            raise ProviderError(
                E.RATE_LIMITED,
                f"{E.RATE_LIMITED.message} {why}",
                headers={
                    "X-Rate-Limit-Remaining": "0",
                    "X-Rate-Limit-Reset": str(int(reset)),
                    "Retry-After": str(fate.retry_after),
                },
            )
        if fate.action is Action.ERROR:
            spec = _error_spec(fate.status, endpoint)
            raise ProviderError(spec, f"{spec.message} {why}")

    def _delivered(self, message: Message) -> None:
        self._store.save_message(message)
        self._bus.publish("message.delivered", message.to_json, subject=message)

    def _undelivered(self, message: Message) -> None:
        self._store.save_message(message)
        self._bus.publish("message.undelivered", message.to_json, subject=message)

    def _find(self, otp_id: str, account: str | None) -> Otp:
        """The stored OTP; 404 2021 for an unknown id, or one of another account."""
        key = otp_id.lower()
        otp = self._store.get_otp(key) if _UUID.match(key) else None
        if otp is None or (account is not None and otp.account != account):
            raise ProviderError(E.OTP_NOT_FOUND)
        return otp

    def get_otp(self, otp_id: str, *, account: str | None = None) -> Otp:
        """The OTP, its expiry recorded if its TTL has passed; 404 2021 if unknown.

        With ``account``, only that account's OTPs are found (the provider API).
        """
        self._catch_up()
        otp = self._find(otp_id, account)
        with self._scheduler.acting_for(otp.account):
            if otp.expire_if_due(self._scheduler.now()):
                self._changed(otp)
        return otp

    def list_otps(
        self,
        *,
        account: str | None = None,
        phone_number: str | None = None,
        status: Status | None = None,
        limit: int | None = None,
    ) -> list[Otp]:
        """OTPs newest first (PIN and attempt history included), as time has left them."""
        self._catch_up()
        return self._store.list_otps(
            account=account, phone_number=phone_number, status=status, limit=limit
        )

    def status_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """How many OTPs, and how many SMS, are stored in each status (for metrics)."""
        return self._store.count_otps_by_status(), self._store.count_messages_by_status()

    def verify(self, otp_id: str, body: Mapping[str, Any], *, account: str | None = None) -> Otp:
        """``POST /otp/{otpId}``: check a PIN; raises ProviderError on every refusal."""
        self._catch_up()
        otp = self._find(otp_id, account)
        pin = body.get("pin")
        if isinstance(pin, int) and not isinstance(pin, bool):
            pin = str(pin)
        if not isinstance(pin, str) or not pin.strip():
            raise ProviderError(E.PIN_MISSING)
        with self._scheduler.acting_for(otp.account):
            self._settle(otp, otp.verify(pin.strip(), self._scheduler.now()))
        return otp

    def cancel(self, otp_id: str, *, account: str | None = None) -> Otp:
        """``DELETE /otp/{otpId}``: cancel a PENDING OTP."""
        self._catch_up()
        otp = self._find(otp_id, account)
        with self._scheduler.acting_for(otp.account):
            self._settle(otp, otp.cancel(self._scheduler.now()))
        return otp

    def _settle(self, otp: Otp, verdict: Verdict) -> None:
        """Record and announce a change (even a refused one), then answer its error."""
        if verdict.changed:
            self._changed(otp)
        else:
            self._store.save_otp(otp)  # an attempt was counted
        if verdict.error is not None:
            raise ProviderError(verdict.error)

    def _changed(self, otp: Otp) -> None:
        if otp.status is not Status.PENDING:
            self._expiry_done(otp.otp_id)
        self._store.save_otp(otp)
        self._bus.publish("otp.updated", otp.to_sim, subject=otp)

    # -- expiry on time ------------------------------------------------------------------

    def _expect_expiry(self, otp: Otp) -> None:
        """Schedule a PENDING OTP's expiry, and forget the expiries of OTPs the store has
        forgotten: with ``max_messages`` newer OTPs expecting one, the oldest is gone
        from the store (retention, applied as each was saved), so its job is stale."""
        job = self._scheduler.at(
            otp.expires_at, Kind.EXPIRY, otp.otp_id, otp.account, view=otp.account
        )
        self._expiring[otp.otp_id] = job
        expiring, kept = self._expiring, self._store.retention.max_messages
        while len(expiring) > kept:
            self._scheduler.cancel(expiring.popitem(last=False)[1])

    def _expiry_done(self, otp_id: str) -> None:
        """The OTP left PENDING (or the store): its expiry job, if any, is stale."""
        job = self._expiring.pop(otp_id, None)
        if job is not None:
            self._scheduler.cancel(job)

    def _expire_job(self, job: Job) -> None:
        if self._expiring.get(job.key) is job:
            del self._expiring[job.key]
        otp = self._store.get_otp(job.key)
        if otp is not None and otp.expire_if_due(job.due):
            self._changed(otp)

    def _expiry_pending(self, job: Job) -> bool:
        """Whether an expiry job still matters, for the scheduler's sweep of stale jobs:
        from memory only (the sweep runs on the event loop over every waiting job; a
        store read each made a frozen-clock flood stall every request for seconds)."""
        return self._expiring.get(job.key) is job

    # -- the inbox ---------------------------------------------------------------------

    def messages(
        self,
        *,
        account: str | None = None,
        phone_number: str | None = None,
        otp_id: str | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        self._catch_up()
        return self._store.list_messages(
            account=account, phone_number=phone_number, otp_id=otp_id, limit=limit
        )

    def latest_message(
        self,
        *,
        account: str | None = None,
        phone_number: str | None = None,
        otp_id: str | None = None,
    ) -> Message | None:
        """The newest SMS that reached the phone (DELIVERED), if any."""
        self._catch_up()
        found = self._store.list_messages(
            account=account,
            phone_number=phone_number,
            otp_id=otp_id,
            status=SmsStatus.DELIVERED,
            limit=1,
        )
        return found[0] if found else None

    async def wait_latest_message(
        self,
        *,
        phone_number: str | None,
        otp_id: str | None,
        wait: float,
        account: str | None = None,
    ) -> Message | None:
        """The newest delivered SMS; if none yet, wait up to ``wait`` seconds for one.

        The wait ends early when the simulator clock is moved past it, and never lasts
        longer than ``wait`` wall-clock seconds.
        """
        found = self.latest_message(account=account, phone_number=phone_number, otp_id=otp_id)
        if found is not None or wait <= 0:
            return found

        def delivered(event: Event) -> Message | None:
            sms = event.subject
            if (
                isinstance(sms, Message)
                and (account is None or sms.account == account)
                and (phone_number is None or sms.phone_number == phone_number)
                and (otp_id is None or sms.otp_id == otp_id)
            ):
                return sms
            return None

        sleep = self._sleep_until(account, wait)
        if await self._first("message.delivered", delivered, sleep) is None:
            return None
        return self.latest_message(account=account, phone_number=phone_number, otp_id=otp_id)

    def clear_messages(self, account: str | None = None) -> None:
        self._store.clear_messages(account)
        self._bus.publish("messages.cleared", {"account": account})

    # -- the request journal -------------------------------------------------------------

    def log_request(self, record: RequestRecord) -> RequestRecord:
        """Keep a provider-API request in the journal (numbered here: its ``seq``), and
        announce it (``request.logged``, PINs masked)."""
        record.seq = next(self._request_seq)
        self._store.save_request(record)
        self._bus.publish("request.logged", record.to_json, subject=record)
        return record

    def requests(self, query: RequestQuery, limit: int | None = None) -> list[RequestRecord]:
        """Journal entries matching ``query``, newest first."""
        return self._store.list_requests(query, limit)

    async def wait_request(self, query: RequestQuery, wait: float) -> RequestRecord | None:
        """The newest entry matching ``query``; if none yet, wait up to ``wait`` seconds
        (of the simulator clock, and at most that long in wall-clock time) for one."""
        found = self._store.list_requests(query, 1)
        if found or wait <= 0:
            return found[0] if found else None

        def logged(event: Event) -> RequestRecord | None:
            record = event.subject
            return record if isinstance(record, RequestRecord) and query.matches(record) else None

        sleep = self._clock.sleep_until(self._clock.time() + wait, real_timeout=wait)
        return await self._first("request.logged", logged, sleep)

    async def _first(
        self, type: str, pick: Callable[[Event], _T | None], sleep: Awaitable[Any]
    ) -> _T | None:
        """The first event of ``type`` that ``pick`` picks something from (what it
        picked), or None once ``sleep`` is over."""
        arrived: asyncio.Future[_T] = asyncio.get_running_loop().create_future()

        def listener(event: Event) -> None:
            if not arrived.done() and (found := pick(event)) is not None:
                arrived.set_result(found)

        unsubscribe = self._bus.subscribe(listener, type)
        timer = asyncio.ensure_future(sleep)
        either: set[asyncio.Future[Any]] = {arrived, timer}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            unsubscribe()
            timer.cancel()
        return arrived.result() if arrived.done() else None

    def clear_requests(self, account: str | None = None) -> None:
        """Empty the journal (of one account's entries)."""
        self._store.clear_requests(account)

    def otp_phone(self, otp_id: str) -> str | None:
        """The number an OTP was sent to, if it is kept (no side effect: for the journal
        of a request refused before its handler knew the OTP)."""
        key = otp_id.lower()
        otp = self._store.get_otp(key) if _UUID.match(key) else None
        return otp.request.phone_number if otp is not None else None

    # -- the clock -------------------------------------------------------------------------

    def now(self, account: str | None = None) -> float:
        """The simulator's time (Unix seconds); with ``account``, on its clock."""
        return self._scheduler.now() if account is None else self._scheduler.now(account)

    def _sleep_until(self, account: str | None, wait: float) -> Coroutine[Any, Any, bool]:
        """Wait ``wait`` seconds of ``account``'s clock (at most as many real ones)."""
        view = self._scheduler.view(account) if account is not None else None
        clock: Clock | ClockView = view if view is not None else self._clock
        return clock.sleep_until(clock.time() + wait, real_timeout=wait)

    def clock_json(self, account: str | None = None) -> dict[str, object]:
        """The clock as ``GET /_sim/clock`` shows it; with ``account``, that account's
        (``"own"``: whether it has a clock of its own)."""
        if account is None:
            return self._clock.snapshot()
        view = self._scheduler.view(account)
        shown = view.snapshot() if view is not None else self._clock.snapshot()
        return {**shown, "own": view is not None}

    def move_clock(
        self,
        *,
        to: float | None = None,
        advance: float | None = None,
        freeze: bool | None = None,
        account: str | None = None,
    ) -> dict[str, object]:
        """Set the clock ``to`` a time, then ``advance`` it, then ``freeze`` or unfreeze
        it (each if given); announce it, then run every job now due, in due-time order,
        each stamped with its own due time. Returns the clock as ``clock_json``.

        With ``account``: that account's own clock (opened at the shared time if it has
        none), which moves nothing else: its OTPs, SMS, tokens and callbacks run on it.
        Without: the shared clock, and every account's own clock with it.

        A job that does real I/O (a callback attempt) holds the jobs due after it until
        it is done, for at most ``callback_timeout`` wall-clock seconds in all, so this
        may return with the jump still under way: :meth:`wait_jump` waits for it.
        """
        if account is not None:
            start = self._scheduler.now(account)
            self._check_clock((to if to is not None else start) + (advance or 0.0), account)
            view = self._open_view(account)
            if to is not None:
                view.set(to)
            if advance is not None:
                view.advance(advance)
            if freeze is not None:
                view.freeze(freeze)
            self._scheduler.view_moved()
            shown = self.clock_json(account)
            self._bus.publish("account.clock", {**shown, "account": account})
            self._scheduler.jump(wait=self.settings.callback_timeout)
            return self.clock_json(account)
        before = self._clock.time()
        self._check_shared_move((to if to is not None else before) + (advance or 0.0) - before)
        if to is not None:
            self._clock.set(to)
        if advance is not None:
            self._clock.advance(advance)
        if freeze is not None:
            self._clock.freeze(freeze)
        self._scheduler.shared_moved(self._clock.time() - before)
        self._bus.publish("clock", self._clock.snapshot())
        self._scheduler.jump(wait=self.settings.callback_timeout)
        return self._clock.snapshot()

    def _check_clock(self, target: float, account: str | None) -> None:
        """400 1020 if a clock (``account``'s; None: the shared one) would leave the
        range every clock keeps to (nothing has moved yet)."""
        if not CLOCK_MIN <= target <= CLOCK_MAX:
            whose = "" if account is None else f" (the clock of account {account[:64]!r})"
            raise ProviderError(
                E.SIM_INVALID_PARAM,
                f"The clock must stay between 1970-01-01 and 9999-12-31 (UTC){whose}",
            )

    def _check_shared_move(self, seconds: float) -> None:
        """A move of the shared clock by ``seconds`` moves every account's clock with it:
        refused (400 1020) if any would leave the range, before anything moves."""
        self._check_clock(self._clock.time() + seconds, None)
        span = self._scheduler.view_range()
        if span is not None and seconds:
            (low, at_low), (high, at_high) = span
            self._check_clock(at_low + seconds, low)
            self._check_clock(at_high + seconds, high)

    def _open_view(self, account: str) -> ClockView:
        """``account``'s own clock; 400 1040 when too many accounts have one."""
        view = self._scheduler.view(account)
        if view is None:
            if self._scheduler.views() >= self.settings.max_account_scenarios:
                raise ProviderError(
                    E.TOO_MANY_ACCOUNT_SCENARIOS,
                    f"{self.settings.max_account_scenarios} accounts already have a clock "
                    "of their own (--max-account-scenarios): reset an account first",
                )
            view = self._scheduler.open_view(account)
        return view

    async def wait_jump(self) -> None:
        """Return once the clock's last move has run every job it made due, in order
        (callback attempts included, within the bound :meth:`move_clock` names)."""
        await self._scheduler.settled()

    # -- scenarios -------------------------------------------------------------------------

    def use_scenario(
        self,
        network: NetworkSpec | None,
        *,
        name: str | None = None,
        keep_clock: bool = False,
        account: str | None = None,
    ) -> None:
        """Activate a network model (None: back to the configured defaults).

        Carrier rules, OTP defaults and the rate limit take effect for the next request;
        its clock settings move the clock now, unless ``keep_clock`` (a restart whose
        clock came back from the store: it already started where the scenario said,
        and has moved since).

        With ``account``: for that account only (its requests, by API key or OAuth
        client id), replacing the global model for it wholly (no merging); None
        forgets it (the global model applies again). Its clock settings set the
        account's own clock. At most ``settings.max_account_scenarios`` accounts have a
        scenario, and as many a clock, of their own (400 1040 beyond: nothing changes).
        """
        spec = network
        if account is not None:
            self._use_own_scenario(account, spec, name)
            return
        if not keep_clock and spec is not None and spec.clock_start is not None:
            # It moves every account's clock with the shared one: refused before
            # anything changes if one would leave the range.
            self._check_shared_move(spec.clock_start - self._clock.time())
        self._configure(self._global, spec, name)
        balance = self.settings.default_balance
        if spec is not None and spec.balance is not None:
            balance = spec.balance
        self._balances.use_default(balance)
        self._bus.publish("scenario", self.scenario_json())
        before = self._clock.time()
        if not keep_clock and self._apply_scenario_clock():
            self._scheduler.shared_moved(self._clock.time() - before)
            self._bus.publish("clock", self._clock.snapshot())
            self._catch_up()

    def _configure(self, network: _Network, spec: NetworkSpec | None, name: str | None) -> None:
        """Give ``network`` the model ``spec`` describes (None: the configured one);
        its sequences, chance and rate budgets start again."""
        network.carrier.configure(spec.carrier if spec else None)
        base = self.settings.otp_defaults
        network.otp_defaults = spec.otp_defaults(base) if spec else base
        limit, window = self.settings.rate_limit, self.settings.rate_limit_window
        if spec is not None and spec.rate_limit is not None:
            limit, window = spec.rate_limit
        network.limiter.configure(limit, window)
        scenario_pins = _fixed_pin_rules(spec.fixed_pins) if spec is not None else ()
        network.fixed_pins = scenario_pins + self._configured_pins
        network.spec, network.name = spec, (name if spec is not None else None)

    def _use_own_scenario(self, account: str, spec: NetworkSpec | None, name: str | None) -> None:
        if spec is None:
            self._forget_own_scenario(account)
        else:
            own = self._own.get(account)
            if own is None and len(self._own) >= self.settings.max_account_scenarios:
                raise ProviderError(
                    E.TOO_MANY_ACCOUNT_SCENARIOS,
                    f"{self.settings.max_account_scenarios} accounts already have a "
                    "scenario of their own (--max-account-scenarios): reset an account "
                    "or DELETE its scenario first",
                )
            rules = self._own_rules - _rules_in(own) + _rules_in(spec)
            if rules > self.settings.max_account_rules:
                raise ProviderError(
                    E.TOO_MANY_ACCOUNT_SCENARIOS,
                    f"This scenario has {_rules_in(spec)} rules and fixed PINs: accounts' own "
                    f"scenarios would have {rules} in all, over --max-account-rules "
                    f"({self.settings.max_account_rules}): reset an account or DELETE its "
                    "scenario first",
                )
            if spec.clock_start is not None or spec.clock_frozen is not None:
                self._open_view(account)  # refused (1040) before anything changes
            if own is None:
                own = _Network(
                    Carrier(self._scheduler, delivers=False),
                    RateLimiter(self._clock, None, self.settings.rate_limit_window),
                    self.settings.otp_defaults,
                    self._configured_pins,
                )
            self._configure(own, spec, name)
            self._own[account] = own
            self._own_rules = rules
            self._balances.use_own_default(
                account, self.settings.default_balance if spec.balance is None else spec.balance
            )
        self._bus.publish("account.scenario", {"account": account, **self.scenario_json(account)})
        if spec is not None and (spec.clock_start is not None or spec.clock_frozen is not None):
            # Its clock settings set the account's own clock, not the shared one.
            self.move_clock(to=spec.clock_start, freeze=spec.clock_frozen, account=account)

    def _forget_own_scenario(self, account: str) -> None:
        own = self._own.pop(account, None)
        if own is not None:
            self._own_rules -= _rules_in(own)
            self._balances.use_own_default(account, None, own=False)

    def _apply_scenario_clock(self) -> bool:
        """Set the clock as the global scenario says; True if it said anything."""
        spec = self._global.spec
        if spec is None:
            return False
        if spec.clock_start is not None:
            self._clock.set(spec.clock_start)
        if spec.clock_frozen is not None:
            self._clock.freeze(spec.clock_frozen)
        return spec.clock_start is not None or spec.clock_frozen is not None

    def scenario_json(self, account: str | None = None) -> dict[str, Any]:
        """The scenario in force (``GET /_sim/scenario``): the global one, or with
        ``account`` the one in force for that account (``"own"``: its own, not the
        global one)."""
        if account is None:
            return self._global.to_json()
        return {**self._network(account).to_json(), "own": account in self._own}

    def account_scenarios(self) -> int:
        """How many accounts have a scenario of their own."""
        return len(self._own)

    # -- reset -------------------------------------------------------------------------------

    def reset(self, account: str | None = None) -> None:
        """Back to a clean state: no OTPs, no messages, no journaled requests, the clock
        as configured at start.

        The global scenario stays active: its sequences start again, and its clock
        settings (frozen, start) apply again; accounts' own scenarios are forgotten.
        With ``account`` only that account's OTPs, messages, callbacks, journal entries,
        balance and own scenario go; the clock, the global scenario and the other
        accounts stay as they are.
        """
        if account is not None:
            if account in self._own:
                self._forget_own_scenario(account)
                self._bus.publish(
                    "account.scenario", {"account": account, **self.scenario_json(account)}
                )
            self._store.clear(account)
            self._carrier.forget(account)  # its SMS still on their way do not arrive
            for otp_id in [k for k, job in self._expiring.items() if job.ref == account]:
                self._expiry_done(otp_id)
            self._balances.reset(account)
            self._scheduler.close_view(account)  # back on the shared clock
            self._bus.publish("reset", {**self._clock.snapshot(), "account": account})
            return
        self._store.clear()
        self._scheduler.clear(Kind.EXPIRY)
        self._expiring.clear()
        self._carrier.forget()
        self._carrier.configure(self._carrier.network)  # sequences start again
        self._limiter.reset()
        for own in list(self._own):
            self._forget_own_scenario(own)
        self._scheduler.close_views()
        self._balances.reset()
        self._clock.reset()
        self._apply_scenario_clock()
        self._bus.publish("reset", {**self._clock.snapshot(), "account": None})
