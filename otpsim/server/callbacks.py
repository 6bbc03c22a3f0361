"""Status callbacks: a webhook dispatcher that batches, retries, signs and records.

Every status change away from PENDING becomes an item of an ``otp_update`` callback to
the OTP's ``otpCallbackUrl`` (or the configured default URL). Items for one URL that
occur within the batch window share one request (at most 200 items). The window is
simulator time: a batch closes when the simulator clock reaches its first item's time
plus the window (a scheduler job, so a clock jump closes it in due order among the
other jobs), or, if the clock stood still meanwhile (frozen), once the window has
passed in real time. Each request is a :class:`Delivery`, due at its batch's close and
attempted on the retry schedule of the *simulator* clock until a 2xx answer, a 410
(which stops retries for that URL), or the schedule runs out. Every attempt is recorded
and published as a ``callback.attempt`` event.

Nothing here runs on the API's path: the bus listener only appends to a batch (and
records the item in the store's outbox, in the same transaction as the change, so a
change answered is a callback that will be sent, even after a crash); timers, a
scheduler task and a bounded number of attempt tasks do the sending, fairly: each
receiver has its own queue, served round-robin, with its own caps on attempts in flight
and deliveries waiting.

Its attempts become due on the engine's one scheduler (``sim.timers``), so a clock jump
makes each due at its own time, in order, and each attempt is recorded at the time it
was due; the HTTP requests themselves are real network I/O. An attempt's job hands the
scheduler a future of its outcome: a clock jump waits for it (bounded) before it runs
the jobs due later, so the attempt's event, and its retry, fall in due order among the
jump's other events. It gets what it needs (the bus, the timers, the delivery log, an
id source), never the simulator itself.

Example::

    dispatcher = CallbackDispatcher(
        settings, bus=sim.bus, timers=sim.timers, log=sim.delivery_log, new_id=sim.new_id
    )
    await dispatcher.start()
    ...
    still_pending = await dispatcher.close()
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import functools
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

import aiohttp
from aiohttp import web

from otpsim import __version__, jsoncodec
from otpsim.clock import iso
from otpsim.config import Settings
from otpsim.domain.otp import Otp, Status, api_view
from otpsim.domain.request import ip_of, is_loopback_host, url_target
from otpsim.engine import Job, Kind, Timers
from otpsim.errors import E, ProviderError
from otpsim.events import Event, EventBus
from otpsim.store import AttemptRecord, DeliveryLog, DeliveryRecord, OutboxItem

log = logging.getLogger("otpsim.callbacks")

MAX_ITEMS = 200  # items in one callback request (the contract's limit)
EVENT_NAME = "otp_update"
# Sent with every callback: this simulator's random instance id. A simulator refuses any
# request that carries its own (see :func:`own_callback_refusal`), so whatever name or
# address a callback URL uses, a callback can never drive the simulator that sent it.
INSTANCE_HEADER = "otpsim-instance"
SELF_REFUSED = "refused: the callback URL points at the simulator itself"


class State(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or in flight)
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # the retry schedule ran out
    GONE = "gone"  # the receiver answered 410: no more retries for that URL
    DROPPED = "dropped"  # shed: too many deliveries were waiting (see _make_room)


@dataclass(slots=True)
class Attempt:
    number: int
    at: float  # simulator clock
    url: str
    status_code: int | None
    error: str | None
    latency_ms: float
    next_retry_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "at": iso(self.at),
            "url": self.url,
            "statusCode": self.status_code,
            "error": self.error,
            "latencyMs": round(self.latency_ms, 3),
            "nextRetryAt": None if self.next_retry_at is None else iso(self.next_retry_at),
        }

    def to_record(self) -> AttemptRecord:
        return AttemptRecord(
            self.number, self.at, self.url, self.status_code, self.error,
            self.latency_ms, self.next_retry_at,
        )  # fmt: skip

    @classmethod
    def from_record(cls, r: AttemptRecord) -> Attempt:
        return cls(r.number, r.at, r.url, r.status_code, r.error, r.latency_ms, r.next_retry_at)


@dataclass(slots=True)
class Delivery:
    """One callback request (a batch of items to one URL), attempted until it settles.
    (An SMS's own delivery status is another thing: ``domain.message.SmsStatus``.)"""

    delivery_id: str  # the webhook-id, stable across attempts
    account: str
    url: str
    body: bytes  # the exact bytes sent on every attempt
    otp_ids: tuple[str, ...]
    created_at: float
    state: State = State.PENDING
    attempts: list[Attempt] = field(default_factory=list)
    next_attempt_at: float | None = None
    job: Job | None = None  # its next attempt on the scheduler (older jobs are stale)

    def to_record(self) -> DeliveryRecord:
        """Everything about this delivery, for a store that survives restarts."""
        return DeliveryRecord(
            delivery_id=self.delivery_id,
            account=self.account,
            url=self.url,
            body=self.body.decode("utf-8"),
            otp_ids=self.otp_ids,
            created_at=self.created_at,
            state=self.state.value,
            attempts=tuple(a.to_record() for a in self.attempts),
            next_attempt_at=self.next_attempt_at,
        )

    @classmethod
    def from_record(cls, record: DeliveryRecord) -> Delivery:
        return cls(
            delivery_id=record.delivery_id,
            account=record.account,
            url=record.url,
            body=record.body.encode("utf-8"),
            otp_ids=record.otp_ids,
            created_at=record.created_at,
            state=State(record.state),
            attempts=[Attempt.from_record(a) for a in record.attempts],
            next_attempt_at=record.next_attempt_at,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.delivery_id,
            "account": self.account,
            "url": self.url,
            "event": EVENT_NAME,
            "otpIds": list(self.otp_ids),
            "status": self.state.value,
            "createdAt": iso(self.created_at),
            "nextAttemptAt": None if self.next_attempt_at is None else iso(self.next_attempt_at),
            "attempts": [a.to_json() for a in self.attempts],
            "payload": jsoncodec.loads(self.body),
        }


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: ``whsec_<base64>`` decoded, anything else as UTF-8."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except ValueError:
            pass
    return secret.encode("utf-8")


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_local_address(host: str) -> bool:
    """Whether a literal address belongs to this machine (only local addresses bind)."""
    address = ip_of(host)
    if address is None:
        return False
    family = socket.AF_INET6 if isinstance(address, ipaddress.IPv6Address) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True


def points_at_self(url: str, ports: set[int], host_header: str | None = None) -> bool:
    """Whether ``url`` reaches this simulator, listening on ``ports``, as far as can be
    told without a DNS lookup: the name the client used to reach it (``Host``), or any
    loopback name, the machine's name or one of its addresses with a listening port.
    Loopback URLs of other ports are not (the application under test lives there)."""
    try:
        host, port = url_target(url)  # as the HTTP client will see it (yarl, IDNA)
    except ValueError:
        return False  # (refused before this: the client could not send it)
    try:
        if host_header and url_target(f"http://{host_header}") == (host, port):
            return True
    except ValueError:
        pass  # a Host that names nothing: the other checks still apply
    if port not in ports:
        return False
    return (
        is_loopback_host(host)
        or host == socket.gethostname().rstrip(".").lower()
        or _is_local_address(host)
    )


def self_callback_error() -> ProviderError:
    return ProviderError(
        E.CALLBACK_URL_INVALID,
        "The parameter 'otpCallbackUrl' points at the simulator itself "
        "(callbacks cannot drive the simulator)",
    )


@functools.lru_cache(maxsize=1024)
def receiver_of(url: str) -> str:
    """The receiver a URL belongs to, for fair scheduling: its scheme, host and port."""
    try:
        host, port = url_target(url)
    except ValueError:
        return url
    return f"{url.partition(':')[0].lower()}://{host}:{port}"


@dataclass(slots=True, eq=False)
class _Batch:
    delivery_id: str  # of the delivery it becomes; its outbox rows carry it
    opened_at: float  # simulator time of its first item
    items: list[dict[str, Any]]
    otp_ids: list[str]
    job: Job | None = None  # its close, at opened_at + the window (simulator time)
    timer: asyncio.TimerHandle | None = None  # the same window in real time (frozen clock)
    closed: asyncio.Future[None] | None = None  # done when it closes (someone waits for it)

    def stop_timers(self, timers: Timers) -> None:
        """It is closed (flushed, forgotten, or the dispatcher stops): no more timers, and
        whoever waits for it (:meth:`CallbackDispatcher.settle`) goes on."""
        if self.closed is not None:
            _done(self.closed)
        if self.job is not None:
            timers.cancel(self.job)
            self.job = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class _Backlogs:
    """How many deliveries each key (an account, a receiver) has waiting, with the
    largest found in O(1): keys are kept in buckets by count."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._buckets: dict[int, dict[str, None]] = {}
        self._top = 0

    def add(self, key: str) -> None:
        count = self.counts.get(key, 0)
        if count:
            self._leave(key, count)
        self.counts[key] = count + 1
        self._buckets.setdefault(count + 1, {})[key] = None
        self._top = max(self._top, count + 1)

    def remove(self, key: str) -> None:
        count = self.counts[key]
        self._leave(key, count)
        if count == 1:
            del self.counts[key]
        else:
            self.counts[key] = count - 1
            self._buckets.setdefault(count - 1, {})[key] = None
        while self._top and self._top not in self._buckets:
            self._top -= 1

    def _leave(self, key: str, count: int) -> None:
        bucket = self._buckets[count]
        del bucket[key]
        if not bucket:
            del self._buckets[count]

    def largest(self, spare: str | None = None) -> str | None:
        """A key with the most waiting; on a tie, one other than ``spare``."""
        for key in self._buckets.get(self._top, ()):
            if key != spare:
                return key
        return spare if spare in self.counts else None


# A delivery whose attempt came due, the job it came due by, and the future the
# scheduler may wait on (done when that attempt is, or when it will not happen).
_Ready = tuple[Delivery, Job, "asyncio.Future[None]"]


MAX_SETTLE = 5.0  # seconds a listing waits at most for open batches (a long window)


def _real(window: float) -> float:
    """When a batch's window has surely passed in real time too: a little after it, so
    that on a running clock its job on the simulator clock closes it (exactly at its
    due time) first."""
    return window * 1.05 + 0.01


def _done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(slots=True, eq=False)
class _Lane:
    """One receiver's share of the work: its deliveries due now, in order (with the job
    each came due by: a stale one is skipped), what it has in flight, and how many of its
    deliveries are waiting (pending)."""

    receiver: str
    ready: deque[_Ready] = field(default_factory=deque)
    in_flight: int = 0
    pending: int = 0
    rotating: bool = False  # in the round-robin of lanes with work to start


class CallbackDispatcher:
    """Sends callbacks fairly: each receiver (a URL's origin) has its own queue, served
    round-robin, with at most ``callback_concurrency_per_receiver`` attempts in flight
    and ``callback_max_pending_per_receiver`` deliveries waiting, so a receiver that is
    slow or dead holds only its share and never delays nor drops another's callbacks.

    ``callback_max_pending`` bounds the deliveries waiting in all; when a new one would
    exceed it, the largest backlog gives way (see :meth:`_make_room`), never a receiver
    or an account that holds less, so dead receivers (cheap: one per port) cannot make a
    healthy receiver's callbacks the ones dropped.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        bus: EventBus,
        timers: Timers,
        log: DeliveryLog | None,
        new_id: Callable[[], str],
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.settings = settings
        self._bus = bus
        self._timers = timers
        self._log = log
        self._new_id = new_id
        self._session = session
        self._own_session = session is None
        self._deliveries: dict[str, Delivery] = {}
        self._batches: dict[tuple[str, str], _Batch] = {}  # by (account, url)
        timers.handle(Kind.CALLBACK, self._due, self._current)
        timers.handle(Kind.BATCH, self._window_closed, self._batch_open)
        self._lanes: dict[str, _Lane] = {}
        self._rotation: deque[_Lane] = deque()
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False
        self._in_flight = 0
        self._pending = 0  # deliveries in State.PENDING
        # The same, by account, and by receiver within each account; and the deliveries
        # themselves by (account, receiver), oldest first: what _make_room sheds from.
        self._by_account = _Backlogs()
        self._by_receiver: dict[str, _Backlogs] = {}
        self._held: dict[tuple[str, str], dict[str, Delivery]] = {}
        self._attempting: set[str] = set()  # deliveries with an attempt in flight
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: Any = None
        # Never from the seeded rng: two simulators replaying one seed must still differ.
        self.instance = secrets.token_hex(16)

    # -- lifetime --------------------------------------------------------------------------

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": f"otpsim/{__version__} (webhooks)"}
            )
        self._unsubscribe = self._bus.subscribe(self._on_event, "reset", "otp.updated")
        if self._log is not None:
            self._recover(self._log)

    def _recover(self, log: DeliveryLog) -> None:
        """A restart: pick up where it was."""
        now = self._timers.now()
        for record in log.load_deliveries():
            delivery = Delivery.from_record(record)
            self._deliveries[delivery.delivery_id] = delivery
            if delivery.state is State.PENDING:
                self._hold(delivery)
                self._schedule(delivery, delivery.next_attempt_at or now)
        # Batches still open at a crash: their items were committed with the changes
        # they report. Each becomes its delivery now (once: the delivery is saved and
        # its outbox rows deleted in one transaction).
        restored: dict[str, tuple[tuple[str, str], _Batch]] = {}
        for row in log.load_outbox():
            if row.delivery_id not in restored:
                batch = _Batch(row.delivery_id, now, [], [])
                restored[row.delivery_id] = ((row.account, row.url), batch)
            batch = restored[row.delivery_id][1]
            batch.items.append(row.item)
            batch.otp_ids.append(row.item["otpId"])
        for key, batch in restored.values():
            if batch.delivery_id in self._deliveries:  # already made (cannot happen)
                log.delete_outbox(batch.delivery_id)
            else:
                self._deliver(key, batch, closed_at=now)

    async def close(self) -> int:
        """Stop: flush open batches, give what is in flight the grace period, report.

        Returns how many deliveries are still pending (not delivered) at exit.
        """
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for key in list(self._batches):
            self._flush(key)
        self._timers.run_due()  # the scheduler's task has stopped: what is due goes now
        grace = self.settings.shutdown_grace
        if grace > 0 and not self._is_idle():
            try:
                await asyncio.wait_for(self._until_idle(), timeout=grace)
            except TimeoutError:
                log.warning("callbacks still in flight after the %gs shutdown grace", grace)
        self._closed = True
        for lane in self._lanes.values():  # (no jump waits for what will not start)
            for *_, future in lane.ready:
                _done(future)
        for task in [*self._tasks, *self._running]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._running, return_exceptions=True)
        self._tasks.clear()
        if self._own_session and self._session is not None:
            await self._session.close()
        if self._pending:
            log.warning(
                "shutdown: %d callback deliveries still pending (not delivered)", self._pending
            )
        return self._pending

    def _is_idle(self) -> bool:
        # With nothing in flight, every lane with work is in the rotation.
        return self._in_flight == 0 and not self._rotation

    async def _until_idle(self) -> None:
        while not self._is_idle():
            self._idle.clear()
            await self._idle.wait()

    # -- events in -------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if event.type == "reset":
            self._forget(event.data.get("account"))
            return
        if event.type != "otp.updated":
            return
        otp = event.subject
        if isinstance(otp, Otp):  # decided on the OTP itself: no view built for nothing
            if otp.status is Status.PENDING:
                return
            if otp.request.callback_url is None and self.settings.callback_url is None:
                return
        data = event.data  # the OTP as the control API shows it: all an item needs
        if data.get("status") == Status.PENDING:
            return
        url = data["otpCallbackUrl"] or self.settings.callback_url
        if url is None:
            return
        account: str = data["account"]
        key = (account, url)
        batch = self._batches.get(key)
        window = self.settings.callback_batch_window
        if batch is None:
            # (In due order: the seeded id source gives the same ids to the same run.)
            delivery_id = "msg_" + self._new_id().replace("-", "")
            batch = self._batches[key] = _Batch(delivery_id, self._timers.now(account), [], [])
            if window > 0:
                due = batch.opened_at + window
                batch.job = self._timers.at(
                    due, Kind.BATCH, delivery_id, (key, batch), view=account
                )
                loop = asyncio.get_running_loop()
                batch.timer = loop.call_later(_real(window), self._window_passed, key, batch)
        item = api_view(data)
        batch.items.append(item)
        batch.otp_ids.append(item["otpId"])
        # Called while the change is published, before its answer: this lands in the
        # same transaction as the change, so an answered change is a callback to send.
        if self._log is not None:
            self._log.add_outbox_item(OutboxItem(batch.delivery_id, account, url, item))
        if len(batch.items) >= MAX_ITEMS or window <= 0:
            self._flush(key)

    def _open_batch(self, job: Job) -> tuple[str, str] | None:
        """The key of the batch a BATCH job closes, if it is still open."""
        key, batch = cast(tuple[tuple[str, str], _Batch], job.ref)
        return key if self._batches.get(key) is batch and batch.job is job else None

    def _batch_open(self, job: Job) -> bool:
        return self._open_batch(job) is not None

    def _window_closed(self, job: Job) -> None:
        """A batch's window has passed on the simulator clock (at ``job.due``)."""
        key = self._open_batch(job)
        if key is not None:
            self._flush(key)

    def _window_passed(self, key: tuple[str, str], batch: _Batch) -> None:
        """A batch's window has passed in real time. If the simulator clock moved less
        than the window meanwhile (it stood still: frozen) the batch closes now; else its
        job on the simulator clock closes it (due by now); during a clock jump the
        jump's pass does, in due order."""
        if self._batches.get(key) is not batch:
            return
        window = self.settings.callback_batch_window
        if self._timers.jumping():
            batch.timer = asyncio.get_running_loop().call_later(
                _real(window), self._window_passed, key, batch
            )
        elif self._timers.now(key[0]) < batch.opened_at + window:
            self._flush(key)
        else:
            batch.timer = None
            self._timers.run_due()

    def _flush(self, key: tuple[str, str]) -> None:
        """Close a batch now (the simulator's time): it becomes its delivery."""
        batch = self._batches.pop(key, None)
        if batch is None:
            return
        batch.stop_timers(self._timers)
        self._deliver(key, batch, closed_at=self._timers.now(key[0]))

    def _deliver(self, key: tuple[str, str], batch: _Batch, *, closed_at: float) -> None:
        """Make a closed batch its delivery: recorded, and scheduled (its first attempt
        due at ``closed_at`` plus the schedule's first delay) unless dropped."""
        account, url = key
        body = jsoncodec.dumps({"event": EVENT_NAME, "data": batch.items})
        delivery = Delivery(
            delivery_id=batch.delivery_id,
            account=account,
            url=url,
            body=body,
            otp_ids=tuple(batch.otp_ids),
            created_at=batch.opened_at,
        )
        self._deliveries[delivery.delivery_id] = delivery
        lane = self._lane(url)
        if lane.pending >= self.settings.callback_max_pending_per_receiver:
            delivery.state = State.DROPPED
            log.warning(
                "callback to %s dropped: %d deliveries to that receiver already waiting",
                url,
                lane.pending,
            )
            self._tidy(lane)
        else:
            self._hold(delivery)
            self._make_room(delivery)
            if delivery.state is State.PENDING:
                first = self.settings.callback_retry_schedule[0]
                self._schedule(delivery, closed_at + first)
        # One transaction: the delivery is recorded as its outbox rows go.
        self._persist(delivery)
        if self._log is not None:
            self._log.delete_outbox(delivery.delivery_id)
        self._retain()

    def _make_room(self, newcomer: Delivery) -> None:
        """Within ``callback_max_pending``, shed from the largest backlog: the account
        with the most deliveries waiting, within it the receiver with the most, and its
        newest delivery not in flight (on a tie, another's before the newcomer's). So
        the newcomer itself is dropped only when its own account and receiver hold the
        most; a receiver that keeps up (a healthy one) is never the one to give way."""
        while self._pending > self.settings.callback_max_pending:
            victim = self._largest_backlog(newcomer)
            if victim.state is not State.PENDING:
                break  # (the newcomer, already shed: only when the cap was lowered)
            waiting = self._pending
            self._finish(victim, State.DROPPED)
            log.warning(
                "callback %s to %s dropped: %d deliveries waiting, the most of them for "
                "its account and receiver",
                victim.delivery_id,
                victim.url,
                waiting,
            )
            if victim is not newcomer:
                self._persist(victim)

    def _largest_backlog(self, newcomer: Delivery) -> Delivery:
        account = self._by_account.largest(spare=newcomer.account)
        if account is not None:
            own = account == newcomer.account
            spare = receiver_of(newcomer.url) if own else None
            receiver = self._by_receiver[account].largest(spare=spare)
            if receiver is not None:
                for delivery in reversed(self._held[(account, receiver)].values()):
                    if delivery.delivery_id not in self._attempting:
                        return delivery
        return newcomer  # (all of that backlog in flight: only with a tiny cap)

    def _persist(self, delivery: Delivery) -> None:
        if self._log is not None:
            self._log.save_delivery(delivery.to_record())

    def _retain(self) -> None:
        """Keep the log within --max-messages: the oldest finished deliveries go first."""
        excess = len(self._deliveries) - self.settings.max_messages
        if excess <= 0:
            return
        for delivery in list(self._deliveries.values()):
            if excess <= 0:
                break
            if delivery.state is not State.PENDING:
                del self._deliveries[delivery.delivery_id]
                if self._log is not None:
                    self._log.delete_delivery(delivery.delivery_id)
                excess -= 1

    def _forget(self, account: str | None = None) -> None:
        """Drop open batches and deliveries (of one account, or all of them)."""
        for key in [k for k in self._batches if account is None or k[0] == account]:
            self._batches.pop(key).stop_timers(self._timers)
        doomed = [d for d in self._deliveries.values() if account is None or d.account == account]
        for delivery in doomed:
            if delivery.state is State.PENDING:
                self._release(delivery)
            if delivery.job is not None:
                self._timers.cancel(delivery.job)
                delivery.job = None
            del self._deliveries[delivery.delivery_id]
        if account is None:
            for lane in list(self._lanes.values()):
                for *_, future in lane.ready:
                    _done(future)
                lane.ready.clear()
                self._tidy(lane)
        # (Lane entries of forgotten deliveries are skipped when they come up.)

    # -- receivers: pending counts and lanes -------------------------------------------------

    def _lane(self, url: str) -> _Lane:
        receiver = receiver_of(url)
        lane = self._lanes.get(receiver)
        if lane is None:
            lane = self._lanes[receiver] = _Lane(receiver)
        return lane

    def _tidy(self, lane: _Lane) -> None:
        """Forget a lane with nothing left to do (lanes exist only for busy receivers)."""
        busy = lane.ready or lane.in_flight or lane.pending or lane.rotating
        if not busy and self._lanes.get(lane.receiver) is lane:
            del self._lanes[lane.receiver]

    def _hold(self, delivery: Delivery) -> None:
        """Count a delivery that became PENDING."""
        self._pending += 1
        lane = self._lane(delivery.url)
        lane.pending += 1
        account = delivery.account
        self._by_account.add(account)
        self._by_receiver.setdefault(account, _Backlogs()).add(lane.receiver)
        self._held.setdefault((account, lane.receiver), {})[delivery.delivery_id] = delivery

    def _release(self, delivery: Delivery) -> None:
        """Count a delivery that is no longer PENDING."""
        self._pending -= 1
        lane = self._lane(delivery.url)
        lane.pending -= 1
        account, key = delivery.account, (delivery.account, lane.receiver)
        self._by_account.remove(account)
        receivers = self._by_receiver[account]
        receivers.remove(lane.receiver)
        if not receivers.counts:
            del self._by_receiver[account]
        held = self._held[key]
        del held[delivery.delivery_id]
        if not held:
            del self._held[key]
        self._tidy(lane)

    # -- scheduling on the simulator clock -------------------------------------------------

    def _schedule(self, delivery: Delivery, at: float) -> None:
        if delivery.job is not None:
            self._timers.cancel(delivery.job)
        delivery.next_attempt_at = at
        delivery.job = self._timers.at(
            at, Kind.CALLBACK, delivery.delivery_id, delivery, view=delivery.account
        )

    def _is_current(self, delivery: Delivery, job: Job) -> bool:
        return (
            delivery.job is job
            and delivery.state is State.PENDING
            and self._deliveries.get(delivery.delivery_id) is delivery
        )

    def _current(self, job: Job) -> bool:
        delivery = job.ref
        return isinstance(delivery, Delivery) and self._is_current(delivery, job)

    def _due(self, job: Job) -> asyncio.Future[None] | None:
        """A delivery's attempt came due (at ``job.due``): into its receiver's lane.
        Returns a future done when that attempt is (a clock jump waits for it)."""
        delivery = job.ref
        if isinstance(delivery, Delivery) and self._is_current(delivery, job) and not self._closed:
            lane = self._lane(delivery.url)
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            lane.ready.append((delivery, job, future))
            self._runnable(lane)
            self._pump()
            return future
        return None

    # -- fair sending: lanes served round-robin -------------------------------------------

    def _runnable(self, lane: _Lane) -> None:
        """Put a lane at the back of the rotation if it has work and room to start it."""
        if (
            not lane.rotating
            and lane.ready
            and lane.in_flight < self.settings.callback_concurrency_per_receiver
        ):
            lane.rotating = True
            self._rotation.append(lane)

    def _next_ready(self, lane: _Lane) -> _Ready | None:
        while lane.ready:
            ready = lane.ready.popleft()
            delivery, job, future = ready
            if self._is_current(delivery, job):
                return ready
            _done(future)
        return None

    def _pump(self) -> None:
        """Start attempts while there is room: one from each lane in turn."""
        limit = self.settings.callback_concurrency
        while self._rotation and self._in_flight < limit and not self._closed:
            lane = self._rotation.popleft()
            lane.rotating = False
            ready = self._next_ready(lane)
            if ready is None:
                self._tidy(lane)
                continue
            delivery, job, future = ready
            lane.in_flight += 1
            self._in_flight += 1
            self._attempting.add(delivery.delivery_id)
            self._idle.clear()
            self._runnable(lane)  # its next one waits for the other lanes' turn
            attempt = self._run(lane, delivery, job.due, future)
            task = asyncio.create_task(attempt, name="callback-attempt")
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(
        self, lane: _Lane, delivery: Delivery, due: float, future: asyncio.Future[None]
    ) -> None:
        try:
            await self._attempt(delivery, due)
        except Exception:
            log.exception("callback attempt to %s failed unexpectedly", delivery.url)
        finally:
            _done(future)
            lane.in_flight -= 1
            self._in_flight -= 1
            self._attempting.discard(delivery.delivery_id)
            self._runnable(lane)
            self._tidy(lane)
            self._pump()
            if self._is_idle():
                self._idle.set()

    # -- one attempt -----------------------------------------------------------------------

    async def _attempt(self, delivery: Delivery, due: float) -> None:
        """One HTTP attempt (real I/O), recorded at ``due``: the simulator time it was
        due, however long it waited for a free slot or the clock jumped past it."""
        assert self._session is not None
        delivery.next_attempt_at = None
        delivery.job = None
        timestamp = int(time.time())  # wall clock: receivers check it against their own
        headers = {
            "Content-Type": "application/json",
            "webhook-id": delivery.delivery_id,
            "webhook-timestamp": str(timestamp),
            INSTANCE_HEADER: self.instance,
        }
        if self.settings.callback_secret:
            headers["webhook-signature"] = sign(
                self.settings.callback_secret, delivery.delivery_id, timestamp, delivery.body
            )
        at = due
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        retry_after: float | None = None
        to_self = False
        timeout = self.settings.callback_timeout
        try:
            async with self._session.post(
                delivery.url,
                data=delivery.body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                status = response.status
                to_self = response.headers.get(INSTANCE_HEADER) == self.instance
                if status in (429, 503):
                    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        except TimeoutError:
            error = f"timeout after {timeout:g}s"
        except aiohttp.ClientConnectorError as exc:
            errno = exc.os_error.errno
            error = f"connection failed: {os.strerror(errno) if errno else exc.os_error}"
        except (aiohttp.ClientError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        attempt = Attempt(
            number=len(delivery.attempts) + 1,
            at=at,
            url=delivery.url,
            status_code=status,
            error=SELF_REFUSED if to_self else error,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        delivery.attempts.append(attempt)
        if to_self:  # it reached this very simulator, which refused it: never again
            self._finish(delivery, State.FAILED)
            log.warning("callback %s to %s: %s", delivery.delivery_id, delivery.url, SELF_REFUSED)
        else:
            self._settle(delivery, attempt, retry_after)
        self._persist(delivery)
        log.info(
            "callback %s attempt %d to %s: %s",
            delivery.delivery_id, attempt.number, delivery.url, status or error,
            extra={"fields": {
                "delivery_id": delivery.delivery_id, "account": delivery.account,
                "url": delivery.url, "attempt": attempt.number, "status": status,
                "error": error, "latency_ms": round(attempt.latency_ms, 3),
                "outcome": delivery.state.value, "otp_ids": list(delivery.otp_ids),
            }},
        )  # fmt: skip
        self._bus.publish(
            "callback.attempt",
            {
                "deliveryId": delivery.delivery_id,
                "account": delivery.account,
                "otpIds": list(delivery.otp_ids),
                "status": delivery.state.value,
                "attempt": attempt.to_json(),
            },
        )

    def _settle(self, delivery: Delivery, attempt: Attempt, retry_after: float | None) -> None:
        status = attempt.status_code
        if status is not None and 200 <= status < 300:
            self._finish(delivery, State.DELIVERED)
            return
        if status == 410:
            for other in list(self._deliveries.values()):
                if other.url == delivery.url and other.state is State.PENDING:
                    self._finish(other, State.GONE)
                    self._persist(other)
            return
        schedule = self.settings.callback_retry_schedule
        done = len(delivery.attempts)
        if done >= len(schedule):
            self._finish(delivery, State.FAILED)
            log.warning(
                "callback %s to %s failed after %d attempts",
                delivery.delivery_id,
                delivery.url,
                done,
            )
            return
        delay = retry_after if retry_after is not None else schedule[done]
        attempt.next_retry_at = attempt.at + delay
        self._schedule(delivery, attempt.next_retry_at)

    def _finish(self, delivery: Delivery, state: State) -> None:
        if delivery.state is State.PENDING:
            self._release(delivery)
        delivery.state = state
        delivery.next_attempt_at = None

    # -- the log ---------------------------------------------------------------------------

    async def settle(
        self,
        *,
        account: str | None = None,
        otp_id: str | None = None,
        delivery_id: str | None = None,
    ) -> None:
        """Wait until the batches open now (of ``account``, with ``otp_id``, becoming
        ``delivery_id``, when given) have closed, so that a listing shows what happened
        so far; at most about one batch window of real time (each closes by then, on a
        running or a frozen clock), and never more than ``MAX_SETTLE`` seconds. Batching
        itself is untouched: this only waits."""
        waiting = []
        for (owner, _), batch in self._batches.items():
            if account is not None and owner != account:
                continue
            if otp_id is not None and otp_id not in batch.otp_ids:
                continue
            if delivery_id is not None and batch.delivery_id != delivery_id:
                continue
            if batch.closed is None:
                batch.closed = asyncio.get_running_loop().create_future()
            waiting.append(batch.closed)
        if waiting:
            bound = min(self.settings.callback_batch_window * 1.05 + 0.05, MAX_SETTLE)
            await asyncio.wait(waiting, timeout=bound)  # never cancels them

    def deliveries(
        self,
        *,
        account: str | None = None,
        otp_id: str | None = None,
        state: str | None = None,
        limit: int | None = None,
    ) -> list[Delivery]:
        """Deliveries newest first, optionally of one account, one OTP or in one state."""
        found = []
        for delivery in reversed(self._deliveries.values()):
            if account is not None and delivery.account != account:
                continue
            if otp_id is not None and otp_id not in delivery.otp_ids:
                continue
            if state is not None and delivery.state != state:
                continue
            found.append(delivery)
            if limit is not None and len(found) >= limit:
                break
        return found

    def get(self, delivery_id: str) -> Delivery | None:
        return self._deliveries.get(delivery_id)

    def resend(self, delivery_id: str) -> Delivery | None:
        """Send a delivery again now, whatever its state.

        A failed resend is retried only while the retry schedule has delays left.
        """
        delivery = self._deliveries.get(delivery_id)
        if delivery is not None:
            if delivery.state is not State.PENDING:
                delivery.state = State.PENDING
                self._hold(delivery)
                self._make_room(delivery)
            if delivery.state is State.PENDING:
                self._schedule(delivery, self._timers.now(delivery.account))
            self._persist(delivery)
        return delivery


DISPATCHER = web.AppKey("dispatcher", CallbackDispatcher)
