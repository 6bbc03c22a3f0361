"""An SMS as the simulated network carries it to the phone."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from otpsim.clock import iso


class SmsStatus(StrEnum):
    """Where an SMS is on its way to the phone (a callback delivery is another thing:
    ``server.callbacks.Delivery``)."""

    QUEUED = "QUEUED"  # accepted, on its way
    DELIVERED = "DELIVERED"  # arrived on the phone (shown in the inbox)
    UNDELIVERED = "UNDELIVERED"  # the network gave up; it never arrives


@dataclass(slots=True)
class Message:
    message_id: str
    otp_id: str
    account: str
    phone_number: str
    country_iso: str
    sender: str
    text: str
    pin: str
    parts: int
    encoding: str
    created_at: float
    seq: int = 0  # order of creation: timestamps tie when the clock is frozen
    status: SmsStatus = SmsStatus.QUEUED
    delivered_at: float | None = None
    deliver_at: float | None = None  # when a QUEUED SMS is due (survives a restart)

    def deliver(self, now: float) -> None:
        self.status = SmsStatus.DELIVERED
        self.delivered_at = now

    def fail(self) -> None:
        self.status = SmsStatus.UNDELIVERED

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Message:
        return cls(**{**data, "status": SmsStatus(data["status"])})

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.message_id,
            "seq": self.seq,
            "otpId": self.otp_id,
            "account": self.account,
            "phoneNumber": self.phone_number,
            "countryIso": self.country_iso,
            "from": self.sender,
            "text": self.text,
            "pin": self.pin,
            "parts": self.parts,
            "encoding": self.encoding,
            "status": self.status._value_,  # (.value: a property, slower)
            "createdAt": iso(self.created_at),
            "deliveredAt": None if self.delivered_at is None else iso(self.delivered_at),
            "deliverAt": (
                iso(self.deliver_at)
                if self.status is SmsStatus.QUEUED and self.deliver_at is not None
                else None
            ),
        }
