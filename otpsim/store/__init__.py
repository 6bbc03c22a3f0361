"""Where OTPs and messages are kept: the :class:`Store` protocol and its backends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from otpsim.clock import ClockState
from otpsim.domain.journal import RequestQuery, RequestRecord
from otpsim.domain.message import Message
from otpsim.domain.otp import Otp
from otpsim.store.retention import Retention


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One callback attempt, as kept (times on the simulator clock)."""

    number: int
    at: float
    url: str
    status_code: int | None
    error: str | None
    latency_ms: float
    next_retry_at: float | None = None


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A callback delivery, as kept: everything it takes to go on after a restart."""

    delivery_id: str
    account: str
    url: str
    body: str  # the exact JSON text sent on every attempt
    otp_ids: tuple[str, ...]
    created_at: float
    state: str
    attempts: tuple[AttemptRecord, ...]
    next_attempt_at: float | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeliveryRecord:
        return cls(
            delivery_id=data["delivery_id"],
            account=data["account"],
            url=data["url"],
            body=data["body"],
            otp_ids=tuple(data["otp_ids"]),
            created_at=data["created_at"],
            state=data["state"],
            attempts=tuple(AttemptRecord(**a) for a in data["attempts"]),
            next_attempt_at=data["next_attempt_at"],
        )


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One item of a callback batch still open, kept with the change it reports."""

    delivery_id: str
    account: str
    url: str
    item: dict[str, Any]


class DeliveryLog(Protocol):
    """Callback deliveries and the outbox, for a store that survives restarts."""

    def save_delivery(self, record: DeliveryRecord) -> None: ...

    def delete_delivery(self, delivery_id: str) -> None: ...

    def load_deliveries(self) -> list[DeliveryRecord]: ...

    # The callback outbox: items of open callback batches, each written with the status
    # change it reports, so a change answered is a callback that will be sent.
    def add_outbox_item(self, item: OutboxItem) -> None: ...

    def delete_outbox(self, delivery_id: str) -> None:
        """Forget a batch's items (as its delivery is saved, in the same transaction)."""
        ...

    def load_outbox(self) -> list[OutboxItem]:
        """Every item left, oldest first."""
        ...


class Journal(DeliveryLog, Protocol):
    """Everything besides OTPs and messages that a durable store keeps."""

    def save_clock(self, state: ClockState) -> None: ...

    def load_clock(self) -> ClockState | None: ...


class Store(Protocol):
    """Storage of OTPs and messages. Listing methods return newest first.

    ``save_*`` both inserts and updates: a backend that keeps copies (SQLite) must
    write the object's current state. ``account`` narrows a query or a deletion to
    what one credential created.
    """

    # What the store keeps (applied at insert, oldest first): the engine mirrors it to
    # forget the timed jobs of what the store has forgotten, without reading the store.
    retention: Retention

    def save_otp(self, otp: Otp) -> None: ...

    def get_otp(self, otp_id: str) -> Otp | None: ...

    def list_otps(
        self,
        *,
        account: str | None = None,
        phone_number: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[Otp]: ...

    def pending_otps(self) -> list[Otp]: ...

    def count_otps_by_status(self) -> dict[str, int]: ...

    def save_message(self, message: Message) -> None: ...

    def list_messages(
        self,
        *,
        account: str | None = None,
        phone_number: str | None = None,
        otp_id: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[Message]: ...

    def count_messages_by_status(self) -> dict[str, int]: ...

    def clear_messages(self, account: str | None = None) -> None: ...

    def clear(self, account: str | None = None) -> None: ...

    def queued_messages(self) -> list[Message]:
        """SMS still on their way (to schedule again after a restart)."""
        ...

    # The request journal (``clear`` empties it too, of one account or of everyone).
    def save_request(self, record: RequestRecord) -> None:
        """Keep one journal entry (its ``seq`` above every kept one's), applying the
        retention's ``max_requests`` and ``max_age``."""
        ...

    def list_requests(self, query: RequestQuery, limit: int | None = None) -> list[RequestRecord]:
        """Journal entries matching ``query``, newest first."""
        ...

    def clear_requests(self, account: str | None = None) -> None: ...

    def last_request_seq(self) -> int:
        """The newest entry's ``seq`` (0: none), to number on after a restart."""
        ...

    # What survives a restart besides OTPs and messages (None: nothing does).
    journal: Journal | None

    async def durable(self) -> None:
        """Return once everything written so far would survive a crash."""
        ...

    def close(self) -> None: ...
