"""The request journal: one record per provider-API request, kept after its answer.

A :class:`RequestRecord` is what was asked and what was answered (time on the simulator
clock, account, method, path, body, status, error, latency, the scenario rules that
fired, the OTP and number concerned). A :class:`RequestQuery` is a filter over them,
the same in both stores and for a waiting ``GET /_sim/requests/latest``.

PINs are stored as sent (QA sometimes needs to see what an app sent) and masked in
every view unless asked for (``to_json(pins=True)``, ``?pins=show``).

Example::

    record = RequestRecord(seq=1, at=now, method="POST", path="/otp/…", status=400,
                           request_id="…", body={"pin": "1234"})
    record.to_json()["body"]        # {"pin": "****"}
    RequestQuery(status=(400, 499)).matches(record)   # True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from otpsim.clock import iso

MAX_BODY_TEXT = 4096  # characters of a body that is not JSON, kept as text
MASK = "****"
# Body keys whose values are masked in every view (unless ``pins``): what a verify sends.
_PIN_KEYS = ("pin",)
_PIN_IN_TEXT = re.compile(r'("pin"\s*:\s*)("(?:[^"\\]|\\.)*"?|[^,}\s]*)')


def request_id_text(seq: int) -> str:
    """``r-000123``: six digits at least, so ids sort as text up to ``r-999999``."""
    return f"r-{seq:06d}"


def parse_request_id(text: str) -> int | None:
    """The number of an id ``r-000123``, or None if ``text`` is not one."""
    if text.startswith("r-") and text[2:].isdigit() and len(text) <= 24:
        return int(text[2:])
    return None


def mask_body(body: Any) -> Any:
    """``body`` with its PINs replaced by ``****`` (the same object when it has none)."""
    if isinstance(body, dict):
        if any(key in body for key in _PIN_KEYS):
            return {k: (MASK if k in _PIN_KEYS else v) for k, v in body.items()}
        return body
    if isinstance(body, str) and '"pin"' in body:
        return _PIN_IN_TEXT.sub(lambda m: f'{m.group(1)}"{MASK}"', body)
    return body


@dataclass(slots=True)
class RequestRecord:
    """One provider-API request and its answer."""

    seq: int
    at: float  # the simulator clock when the request arrived
    method: str
    path: str  # without the query string
    status: int
    request_id: str
    account: str | None = None
    otp_id: str | None = None
    phone_number: str | None = None
    body: Any = None  # a parsed JSON body, a text prefix, or None
    error: dict[str, Any] | None = None  # {"type", "code", "message"}
    latency_ms: float = 0.0
    rules: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return request_id_text(self.seq)

    def to_json(self, *, pins: bool = False) -> dict[str, Any]:
        """The journal entry (``GET /_sim/requests``, the ``request.logged`` event);
        PINs masked unless ``pins``."""
        return {
            "id": request_id_text(self.seq),
            "time": iso(self.at),
            "account": self.account,
            "method": self.method,
            "path": self.path,
            "otpId": self.otp_id,
            "phoneNumber": self.phone_number,
            "requestId": self.request_id,
            "body": self.body if pins else mask_body(self.body),
            "status": self.status,
            "error": self.error,
            "latencyMs": self.latency_ms,
            "rules": self.rules,
        }

    def to_record(self) -> dict[str, Any]:
        """Everything, PINs included (a store's copy)."""
        return {
            "seq": self.seq, "at": self.at, "method": self.method, "path": self.path,
            "status": self.status, "request_id": self.request_id, "account": self.account,
            "otp_id": self.otp_id, "phone_number": self.phone_number, "body": self.body,
            "error": self.error, "latency_ms": self.latency_ms, "rules": self.rules,
        }  # fmt: skip

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> RequestRecord:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class RequestQuery:
    """Which records: every given field must match (None: any)."""

    account: str | None = None
    phone_number: str | None = None
    otp_id: str | None = None
    status: tuple[int, int] | None = None  # inclusive range: (503, 503), (400, 499)
    path: str | None = None  # exact, or a prefix ending in ``*``
    method: str | None = None  # upper case
    after_seq: int | None = None  # ``since`` an id: strictly after it
    since_time: float | None = None  # ``since`` a time: at or after it

    def matches(self, r: RequestRecord) -> bool:
        if self.account is not None and r.account != self.account:
            return False
        if self.phone_number is not None and r.phone_number != self.phone_number:
            return False
        if self.otp_id is not None and r.otp_id != self.otp_id:
            return False
        if self.status is not None and not self.status[0] <= r.status <= self.status[1]:
            return False
        if self.path is not None:
            if self.path.endswith("*"):
                if not r.path.startswith(self.path[:-1]):
                    return False
            elif r.path != self.path:
                return False
        if self.method is not None and r.method != self.method:
            return False
        if self.after_seq is not None and r.seq <= self.after_seq:
            return False
        return self.since_time is None or r.at >= self.since_time


def parse_status(text: str) -> tuple[int, int] | None:
    """``503`` -> (503, 503); ``4xx`` -> (400, 499); None if neither."""
    text = text.strip().lower()
    if len(text) == 3 and text[0] in "12345" and text[1:] == "xx":
        low = int(text[0]) * 100
        return low, low + 99
    if len(text) == 3 and text.isdigit() and 100 <= int(text) <= 599:
        return int(text), int(text)
    return None
