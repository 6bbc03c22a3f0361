"""The simulator: the one place that turns requests into domain actions.

It validates through the domain, records in the store, hands SMS to the carrier and
announces every change on the event bus. Handlers (HTTP today; the scenario runner and
the pytest plugin later) call it and only translate.

Example::

    sim = Simulator(Settings(), clock=Clock(frozen=True))
    otp = sim.create_otp({"phoneNumber": "+33612345678"}, account="key")
    pin = sim.latest_message(otp_id=otp.otp_id).pin
    sim.verify(otp.otp_id, {"pin": pin})
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
import re
from collections.abc import Callable, Mapping
from typing import Any

from otpsim import entropy
from otpsim.auth import Authenticator
from otpsim.carrier import Action, Carrier, Fate, Rule
from otpsim.clock import Clock, parse_iso
from otpsim.config import Settings
from otpsim.domain import phones, pins
from otpsim.domain.balance import Balances
from otpsim.domain.message import Delivery, Message
from otpsim.domain.otp import Otp, Outcome, Status
from otpsim.domain.request import parse_new_otp
from otpsim.domain.sms import render, segment
from otpsim.errors import E, ProviderError
from otpsim.events import Event, EventBus
from otpsim.ratelimit import RateLimiter
from otpsim.scenario.model import Scenario
from otpsim.store import Store
from otpsim.store.memory import MemoryStore
from otpsim.store.retention import Retention

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def uuid4_text(raw: bytes) -> str:
    """16 random bytes as a UUID v4 string (as ``str(uuid.UUID(bytes=..., version=4))``
    would give, without building the object: it is on every request's path)."""
    b = bytearray(raw)
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def normalize_phone(raw: str) -> str:
    """A phone filter as E.164: its digits after a ``+``.

    A ``+`` left unencoded in a query string arrives as a space, so it cannot be relied on.
    """
    digits = "".join(ch for ch in raw if ch.isdigit())
    return "+" + digits


def _fixed_pin_rules(entries: tuple[tuple[str, str], ...]) -> tuple[tuple[Rule, str], ...]:
    """(match, PIN) pairs as rules, matched with the carrier rules' own syntax."""
    return tuple((Rule.of(match), pin) for match, pin in entries)


class Simulator:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        store: Store | None = None,
        bus: EventBus | None = None,
        carrier: Carrier | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or Clock(
            start=None if settings.clock_start is None else parse_iso(settings.clock_start),
            frozen=settings.clock_frozen,
        )
        # None means the OS CSPRNG (secrets); a seeded Random replays a run exactly.
        self.rng = (
            rng
            if rng is not None
            else (random.Random(settings.seed) if settings.seed is not None else None)
        )
        self.store: Store = (
            store
            if store is not None
            else MemoryStore(Retention(settings.max_messages, settings.max_age))
        )
        self.bus = bus or EventBus()
        self.carrier = carrier or Carrier(self.clock)
        saved_clock = self.store.load_clock()
        # True when the clock came back from the store (a restart with --db).
        self.clock_restored = saved_clock is not None
        if saved_clock is not None:
            self.clock.restore(saved_clock)
        self.clock.on_change = lambda: self.store.save_clock(self.clock.state())
        for queued in self.store.queued_messages():  # SMS still on their way at a restart
            self.carrier.schedule(queued, self._delivered)
        self.otp_defaults = settings.otp_defaults
        self.scenario: Scenario | None = None
        # (expires_at, otp_id) of OTPs created PENDING: the sweeper's schedule.
        self._expiries: list[tuple[float, str]] = [
            (otp.expires_at, otp.otp_id) for otp in self.store.pending_otps()
        ]
        heapq.heapify(self._expiries)
        self._expiries_changed = asyncio.Event()
        newest = self.store.list_messages(limit=1)
        self._message_seq = itertools.count(newest[0].seq + 1 if newest else 1)
        self.auth = Authenticator(settings, self.clock, self.rng)
        self.limiter = RateLimiter(self.clock, settings.rate_limit, settings.rate_limit_window)
        self.balances = Balances(settings.default_balance, settings.account_balances)
        self.no_coverage = frozenset(settings.no_coverage)
        self._configured_pins = _fixed_pin_rules(settings.fixed_pins)
        self._fixed_pins = self._configured_pins

    # -- ids ---------------------------------------------------------------------------

    def new_id(self) -> str:
        """A random UUID v4 (from the OS CSPRNG, or from the seed)."""
        if self.rng is None:
            return uuid4_text(entropy.token_bytes(16))
        return uuid4_text(self.rng.getrandbits(128).to_bytes(16, "big"))

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
        """
        request = parse_new_otp(body, self.otp_defaults)
        if check_callback_url is not None and request.callback_url is not None:
            check_callback_url(request.callback_url)
        self.check_coverage(request.phone_number, request.country_iso)
        fixed = self.fixed_pin(request.phone_number)
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
        # per PIN character, so a placeholder PIN renders to the same parts.
        estimate = segment(render(request.template, "0" * request.pin_length)).parts
        self.balances.check(account, self._price(estimate))
        outcome = self.carrier.decide(request.phone_number)
        if outcome.latency:
            await asyncio.sleep(outcome.latency)
        self._refuse_if_told(outcome, request.phone_number)
        # Drawn even for a fixed PIN, so that a seeded run's other PINs stay the same.
        pin = pins.generate(request.pin_type, request.pin_length, self.rng)
        if fixed is not None:
            pin = fixed
        text = render(request.template, pin)
        seg = segment(text)
        now = self.clock.time()
        otp = Otp.issue(
            request,
            otp_id=self.new_id(),
            pin=pin,
            now=now,
            account=account,
            cost=self._price(seg.parts),
            parts=seg.parts,
        )
        message = Message(
            message_id=self.new_id(),
            otp_id=otp.otp_id,
            account=account,
            phone_number=request.phone_number,
            country_iso=request.country_iso,
            sender=request.sender,
            text=text,
            pin=pin,
            parts=seg.parts,
            encoding=seg.encoding,
            created_at=now,
            seq=next(self._message_seq),
        )
        self.balances.charge(account, otp.cost)
        self.store.save_otp(otp)
        self.store.save_message(message)
        self._schedule_expiry(otp)
        self.bus.publish("otp.created", otp.to_sim)
        self.bus.publish("message.created", message.to_json)
        self.carrier.submit(message, outcome, self._delivered, self._undelivered)
        return otp

    def fixed_pin(self, phone: str) -> str | None:
        """The PIN ``phone`` always receives (the scenario's fixed PINs first), if any."""
        return next((pin for rule, pin in self._fixed_pins if rule.matches(phone)), None)

    def _price(self, parts: int) -> float:
        return round(self.settings.price_per_part * parts, 6)

    def check_coverage(self, phone: str, country_iso: str) -> None:
        """403 ``no_coverage`` 1119 for a number with no country (non-geographic: +800,
        +870, +882, ...; the provider's ``countryIso`` is always two letters) or in a
        country configured as not covered (``--no-coverage``)."""
        if not phones.has_country(country_iso):
            raise ProviderError(
                E.NO_COVERAGE,
                f"No coverage or restricted destination: {phone} is a non-geographic "
                "number (it belongs to no country)",
            )
        if country_iso in self.no_coverage:
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
            self.check_coverage(phone.e164, phone.country_iso)
        return {"data": phones.describe(phone)}

    def _refuse_if_told(self, outcome: Fate, phone: str) -> None:
        """Answer as the carrier rule for this number says: invalid, 5xx or 429."""
        why = f"(simulated by the carrier rule for {phone})"
        if outcome.action is Action.REJECT:
            raise ProviderError(E.PHONE_INVALID, f"The phone number provided is invalid {why}")
        if outcome.action is Action.ERROR:
            spec = E.SERVICE_UNAVAILABLE if outcome.status == 503 else E.SERVER_ERROR
            raise ProviderError(spec, f"{spec.message} {why}")
        if outcome.action is Action.RATE_LIMIT:
            window = self.limiter.window
            reset = math.ceil(self.clock.time() / window) * window
            raise ProviderError(
                E.RATE_LIMITED,
                f"{E.RATE_LIMITED.message} {why}",
                headers={"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": str(int(reset))},
            )

    def _delivered(self, message: Message) -> None:
        self.store.save_message(message)
        self.bus.publish("message.delivered", message.to_json)

    def _undelivered(self, message: Message) -> None:
        self.store.save_message(message)
        self.bus.publish("message.undelivered", message.to_json)

    def _find(self, otp_id: str, account: str | None) -> Otp:
        """The stored OTP; 404 2021 for an unknown id, or one of another account."""
        key = otp_id.lower()
        otp = self.store.get_otp(key) if _UUID.match(key) else None
        if otp is None or (account is not None and otp.account != account):
            raise ProviderError(E.OTP_NOT_FOUND)
        return otp

    def get_otp(self, otp_id: str, *, account: str | None = None) -> Otp:
        """The OTP, its expiry recorded if its TTL has passed; 404 2021 if unknown.

        With ``account``, only that account's OTPs are found (the provider API).
        """
        otp = self._find(otp_id, account)
        if otp.expire_if_due(self.clock.time()):
            self._changed(otp)
        return otp

    def verify(self, otp_id: str, body: Mapping[str, Any], *, account: str | None = None) -> Otp:
        """``POST /otp/{otpId}``: check a PIN; raises ProviderError on every refusal."""
        otp = self._find(otp_id, account)
        pin = body.get("pin")
        if isinstance(pin, int) and not isinstance(pin, bool):
            pin = str(pin)
        if not isinstance(pin, str) or not pin.strip():
            raise ProviderError(E.PIN_MISSING)
        self._settle(otp, otp.verify(pin.strip(), self.clock.time()))
        return otp

    def cancel(self, otp_id: str, *, account: str | None = None) -> Otp:
        """``DELETE /otp/{otpId}``: cancel a PENDING OTP."""
        otp = self._find(otp_id, account)
        self._settle(otp, otp.cancel(self.clock.time()))
        return otp

    def _settle(self, otp: Otp, outcome: Outcome) -> None:
        """Record and announce a change (even a refused one), then answer its error."""
        if outcome.changed:
            self._changed(otp)
        else:
            self.store.save_otp(otp)  # an attempt was counted
        if outcome.error is not None:
            raise ProviderError(outcome.error)

    def _changed(self, otp: Otp) -> None:
        self.store.save_otp(otp)
        self.bus.publish("otp.updated", otp.to_sim)

    # -- expiry on time ------------------------------------------------------------------

    def _schedule_expiry(self, otp: Otp) -> None:
        first = not self._expiries or otp.expires_at < self._expiries[0][0]
        heapq.heappush(self._expiries, (otp.expires_at, otp.otp_id))
        if first:
            self._expiries_changed.set()
        if len(self._expiries) > 2 * self.settings.max_messages + 1024:
            self._compact_expiries()

    def _compact_expiries(self) -> None:
        """Drop schedule entries of OTPs no longer pending (verified, or forgotten by
        retention), which would otherwise wait up to a TTL to leave: memory stays flat."""
        live = []
        for entry in self._expiries:
            otp = self.store.get_otp(entry[1])
            if otp is not None and otp.status is Status.PENDING:
                live.append(entry)
        heapq.heapify(live)
        self._expiries = live

    def expire_due(self) -> list[Otp]:
        """Record the expiry of every PENDING OTP whose TTL has passed, oldest first."""
        now = self.clock.time()
        expired = []
        while self._expiries and self._expiries[0][0] <= now:
            _, otp_id = heapq.heappop(self._expiries)
            otp = self.store.get_otp(otp_id)
            if otp is not None and otp.expire_if_due(now):
                self._changed(otp)
                expired.append(otp)
        return expired

    async def sweep_expiries(self) -> None:
        """Run forever: expire each OTP at its ``dateExpires`` on the simulator clock.

        Wakes when the clock reaches the next expiry, when the clock is moved (so
        advancing it ten minutes fires every expiry in between at once), and when an
        OTP that expires sooner is created.
        """
        while True:
            self.expire_due()
            self._expiries_changed.clear()
            next_due = self._expiries[0][0] if self._expiries else None
            await self.clock.wait_for_change(next_due, self._expiries_changed)

    # -- the inbox ---------------------------------------------------------------------

    def messages(
        self,
        *,
        account: str | None = None,
        phone_number: str | None = None,
        otp_id: str | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        return self.store.list_messages(
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
        found = self.store.list_messages(
            account=account,
            phone_number=phone_number,
            otp_id=otp_id,
            status=Delivery.DELIVERED,
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
        arrived: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def listener(event: Event) -> None:
            data = event.data
            if (
                not arrived.done()
                and (account is None or data["account"] == account)
                and (phone_number is None or data["phoneNumber"] == phone_number)
                and (otp_id is None or data["otpId"] == otp_id)
            ):
                arrived.set_result(data["id"])

        unsubscribe = self.bus.subscribe(listener, "message.delivered")
        timer = asyncio.ensure_future(
            self.clock.sleep_until(self.clock.time() + wait, real_timeout=wait)
        )
        either: set[asyncio.Future[Any]] = {arrived, timer}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            unsubscribe()
            timer.cancel()
        if not arrived.done():
            return None
        return self.latest_message(account=account, phone_number=phone_number, otp_id=otp_id)

    def clear_messages(self, account: str | None = None) -> None:
        self.store.clear_messages(account)
        self.bus.publish("messages.cleared", {"account": account})

    # -- the clock and reset -------------------------------------------------------------

    # -- scenarios -------------------------------------------------------------------------

    def use_scenario(self, scenario: Scenario | None, *, keep_clock: bool = False) -> None:
        """Activate a scenario's network half (None: back to the configured defaults).

        Carrier rules, OTP defaults and the rate limit take effect for the next request;
        a scenario's clock settings move the clock now, unless ``keep_clock`` (a restart
        whose clock came back from the store: it already started where the scenario
        said, and has moved since).
        """
        spec = scenario.network if scenario is not None else None
        self.carrier.configure(spec.carrier if spec else None)
        base = self.settings.otp_defaults
        self.otp_defaults = spec.otp_defaults(base) if spec else base
        limit, window = self.settings.rate_limit, self.settings.rate_limit_window
        if spec is not None and spec.rate_limit is not None:
            limit, window = spec.rate_limit
        self.limiter.configure(limit, window)
        balance = self.settings.default_balance
        if spec is not None and spec.balance is not None:
            balance = spec.balance
        self.balances.use_default(balance)
        scenario_pins = _fixed_pin_rules(spec.fixed_pins) if spec is not None else ()
        self._fixed_pins = scenario_pins + self._configured_pins
        self.scenario = scenario
        self.bus.publish("scenario", self.scenario_json())
        if not keep_clock and self._apply_scenario_clock():
            self.clock_changed()
            self.expire_due()

    def _apply_scenario_clock(self) -> bool:
        """Set the clock as the active scenario says; True if it said anything."""
        spec = self.scenario.network if self.scenario is not None else None
        if spec is None:
            return False
        if spec.clock_start is not None:
            self.clock.set(spec.clock_start)
        if spec.clock_frozen is not None:
            self.clock.freeze(spec.clock_frozen)
        return spec.clock_start is not None or spec.clock_frozen is not None

    def scenario_json(self) -> dict[str, Any]:
        scenario = self.scenario
        if scenario is None or scenario.network is None:
            return {"active": False, "name": None, "network": None}
        return {"active": True, "name": scenario.name, "network": scenario.network.to_json()}

    def clock_changed(self) -> None:
        self.bus.publish("clock", self.clock.snapshot())

    def reset(self, account: str | None = None) -> None:
        """Back to a clean state: no OTPs, no messages, the clock as configured at start.

        An active scenario stays active: its sequences start again, and its clock
        settings (frozen, start) apply again. With ``account``
        only that account's OTPs, messages and callbacks go; the clock, the rate
        limits and the scenario, shared by everyone, stay as they are.
        """
        if account is not None:
            self.store.clear(account)
            self.balances.reset(account)
            self.bus.publish("reset", {**self.clock.snapshot(), "account": account})
            return
        self.store.clear()
        self._expiries.clear()
        self._expiries_changed.set()
        self.carrier.forget()
        self.carrier.configure(self.carrier.network)  # sequences start again
        self.limiter.reset()
        self.balances.reset()
        self.clock.reset()
        self._apply_scenario_clock()
        self.bus.publish("reset", {**self.clock.snapshot(), "account": None})
