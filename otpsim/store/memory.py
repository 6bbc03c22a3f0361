"""The in-memory store (the default): maps in insertion order, indexed by phone, with
retention applied in O(1) per insert (:class:`RetainedMap`)."""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

from otpsim.domain.journal import RequestQuery, RequestRecord
from otpsim.domain.message import Message, SmsStatus
from otpsim.domain.otp import Otp, Status
from otpsim.store import Journal
from otpsim.store.retention import RetainedMap, Retention

T = TypeVar("T")


def _take(items: Iterable[T], limit: int | None) -> list[T]:
    return list(items if limit is None else islice(items, limit))


def _created(item: Otp | Message) -> float:
    return item.created_at


class MemoryStore:
    journal: Journal | None = None  # nothing survives a restart

    def __init__(self, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self._otp_map: RetainedMap[Otp] = RetainedMap(self.retention, _created)
        self._message_map: RetainedMap[Message] = RetainedMap(
            self.retention, _created, on_evict=self._unindex
        )
        # Read-only views of the live entries, in insertion order.
        self._otps = self._otp_map.as_dict()
        self._messages = self._message_map.as_dict()
        self._messages_by_phone: defaultdict[str, dict[str, Message]] = defaultdict(dict)
        self._requests: deque[RequestRecord] = deque()  # oldest first

    # -- OTPs ------------------------------------------------------------------------

    def save_otp(self, otp: Otp) -> None:
        self._otp_map.put(otp.otp_id, otp)

    def _drop_otp(self, otp: Otp) -> None:
        self._otp_map.pop(otp.otp_id)

    def get_otp(self, otp_id: str) -> Otp | None:
        return self._otps.get(otp_id)

    def list_otps(
        self,
        *,
        account: str | None = None,
        phone_number: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[Otp]:
        items: Iterator[Otp] = reversed(self._otps.values())
        if account is not None:
            items = (o for o in items if o.account == account)
        if phone_number is not None:
            items = (o for o in items if o.request.phone_number == phone_number)
        if status is not None:
            items = (o for o in items if o.status == status)
        return _take(items, limit)

    def pending_otps(self) -> list[Otp]:
        # Read once, at start-up: not worth a second map kept for every OTP.
        return [otp for otp in self._otps.values() if otp.status is Status.PENDING]

    def count_otps_by_status(self) -> dict[str, int]:
        # Counted when asked (a metrics scrape) rather than kept per object: one entry
        # per OTP in a second map would cost more memory than the count costs time.
        return dict(Counter(otp.status.value for otp in self._otps.values()))

    # -- messages --------------------------------------------------------------------

    def save_message(self, message: Message) -> None:
        if self._messages.get(message.message_id) is message:
            return  # saved again after a change (delivered): this store keeps the object
        self._messages_by_phone[message.phone_number][message.message_id] = message
        self._message_map.put(message.message_id, message)

    def _drop_message(self, message: Message) -> None:
        self._message_map.pop(message.message_id)
        self._unindex(message)

    def _unindex(self, message: Message) -> None:
        by_phone = self._messages_by_phone.get(message.phone_number)
        if by_phone is None:
            return
        by_phone.pop(message.message_id, None)
        if not by_phone:
            del self._messages_by_phone[message.phone_number]

    def list_messages(
        self,
        *,
        account: str | None = None,
        phone_number: str | None = None,
        otp_id: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        source = (
            self._messages
            if phone_number is None
            else self._messages_by_phone.get(phone_number, {})
        )
        items: Iterator[Message] = reversed(source.values())
        if account is not None:
            items = (m for m in items if m.account == account)
        if otp_id is not None:
            items = (m for m in items if m.otp_id == otp_id)
        if status is not None:
            items = (m for m in items if m.status == status)
        return _take(items, limit)

    def count_messages_by_status(self) -> dict[str, int]:
        return dict(Counter(m.status.value for m in self._messages.values()))

    def clear_messages(self, account: str | None = None) -> None:
        doomed = [m for m in self._messages.values() if account is None or m.account == account]
        for message in doomed:
            self._drop_message(message)

    def clear(self, account: str | None = None) -> None:
        self.clear_messages(account)
        self.clear_requests(account)
        doomed = [o for o in self._otps.values() if account is None or o.account == account]
        for otp in doomed:
            self._drop_otp(otp)

    def queued_messages(self) -> list[Message]:
        return [m for m in self._messages.values() if m.status is SmsStatus.QUEUED]

    # -- the request journal ---------------------------------------------------------

    def save_request(self, record: RequestRecord) -> None:
        requests = self._requests
        requests.append(record)
        if len(requests) > self.retention.max_requests:
            requests.popleft()
        cutoff = self.retention.cutoff(record.at)
        while requests and requests[0].at < cutoff:
            requests.popleft()

    def list_requests(self, query: RequestQuery, limit: int | None = None) -> list[RequestRecord]:
        return _take((r for r in reversed(self._requests) if query.matches(r)), limit)

    def clear_requests(self, account: str | None = None) -> None:
        if account is None:
            self._requests.clear()
        else:
            self._requests = deque(r for r in self._requests if r.account != account)

    def last_request_seq(self) -> int:
        return self._requests[-1].seq if self._requests else 0

    async def durable(self) -> None:
        pass

    def close(self) -> None:
        pass
