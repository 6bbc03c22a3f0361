"""The in-memory store (the default): dicts in insertion order, indexed by phone."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

from otpsim.domain.message import Message
from otpsim.domain.otp import Otp, Status

T = TypeVar("T")


def _take(items: Iterable[T], limit: int | None) -> list[T]:
    return list(items if limit is None else islice(items, limit))


class MemoryStore:
    def __init__(self) -> None:
        self._otps: dict[str, Otp] = {}
        self._pending: dict[str, Otp] = {}
        self._messages: dict[str, Message] = {}
        self._messages_by_phone: defaultdict[str, dict[str, Message]] = defaultdict(dict)

    # -- OTPs ------------------------------------------------------------------------

    def save_otp(self, otp: Otp) -> None:
        self._otps[otp.otp_id] = otp
        if otp.status is Status.PENDING:
            self._pending[otp.otp_id] = otp
        else:
            self._pending.pop(otp.otp_id, None)

    def get_otp(self, otp_id: str) -> Otp | None:
        return self._otps.get(otp_id)

    def list_otps(
        self,
        *,
        phone_number: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[Otp]:
        items: Iterator[Otp] = reversed(self._otps.values())
        if phone_number is not None:
            items = (o for o in items if o.request.phone_number == phone_number)
        if status is not None:
            items = (o for o in items if o.status == status)
        return _take(items, limit)

    def pending_otps(self) -> list[Otp]:
        return list(self._pending.values())

    # -- messages --------------------------------------------------------------------

    def save_message(self, message: Message) -> None:
        self._messages[message.message_id] = message
        self._messages_by_phone[message.phone_number][message.message_id] = message

    def list_messages(
        self,
        *,
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
        if otp_id is not None:
            items = (m for m in items if m.otp_id == otp_id)
        if status is not None:
            items = (m for m in items if m.status == status)
        return _take(items, limit)

    def clear_messages(self) -> None:
        self._messages.clear()
        self._messages_by_phone.clear()

    def clear(self) -> None:
        self._otps.clear()
        self._pending.clear()
        self.clear_messages()
