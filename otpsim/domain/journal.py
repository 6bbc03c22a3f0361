"""The request journal: one record per provider-API request, kept after its answer.

A :class:`RequestRecord` is what was asked and what was answered (time on the simulator
clock, account, method, path, body, status, error, latency, the scenario rules that
fired, the OTP and number concerned). A :class:`RequestQuery` is a filter over them,
the same in both stores and for a waiting ``GET /_sim/requests/latest``.

A body is kept as its text, at most 4 KiB (an entry costs about what was sent, however
many objects its JSON would parse into), and parsed when an entry is shown. PINs are
stored as sent (QA sometimes needs to see what an app sent) and masked in every view
unless asked for (``to_json(pins=True)``, ``?pins=show``), whatever the body's form; a
client secret is never stored (the server masks it before the record is made).

Example::

    record = RequestRecord(seq=1, at=now, method="POST", path="/otp/…", status=400,
                           request_id="…", body='{"pin": "1234"}', body_json=True)
    record.to_json()["body"]        # {"pin": "****"}
    RequestQuery(status=(400, 499)).matches(record)   # True
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from otpsim import jsoncodec
from otpsim.clock import iso

MAX_BODY_TEXT = 4096  # characters of a body kept (as text; a JSON object parsed when shown)
MAX_SEQ = 2**63 - 1  # the largest request number a store can hold (SQLite's INTEGER)
MASK = "****"
# The fields of a token request (POST /oauth/token) the journal keeps as sent; any other
# is masked, whatever the body's format: a client secret is never kept.
TOKEN_FIELDS = frozenset({"grant_type", "client_id", "scope"})
TOKEN_PATH = "/oauth/token"
# A string token of JSON text (an escaped quote does not end it).
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SPACE = re.compile(r"\s*")
_SCALAR = re.compile(r"[^,}\]\s]*")
# ``key=value`` pairs of a form-like text (urlencoded, or text/plain written that way).
# (Inside a JSON string too: a quote ends a pair, so the JSON stays JSON.)
_PAIR = re.compile(r'(?:^|(?<=[&;\s?"]))([^=&;\s"]+)=([^&;\s"]*)')


def is_pin_key(key: str) -> bool:
    """A body key whose value is masked in every view (unless ``pins``): what a verify
    sends."""
    return key.strip().lower() == "pin"


def is_secret_key(key: str) -> bool:
    """A body key whose value is never kept (a client secret, a password)."""
    lowered = key.lower()
    return "secret" in lowered or "password" in lowered


def request_id_text(seq: int) -> str:
    """``r-000123``: six digits at least, so ids sort as text up to ``r-999999``."""
    return f"r-{seq:06d}"


def parse_request_id(text: str) -> int | None:
    """The number of an id ``r-000123`` (ASCII digits, at most :data:`MAX_SEQ`), or None
    if ``text`` is not one."""
    digits = text[2:]
    if text.startswith("r-") and 0 < len(digits) <= 19 and digits.isascii() and digits.isdigit():
        seq = int(digits)
        return seq if seq <= MAX_SEQ else None
    return None


def _value_end(text: str, start: int) -> int:
    """Where the JSON value at ``start`` ends (the end of ``text`` if it is cut short)."""
    if start >= len(text):
        return start
    first = text[start]
    if first == '"':
        string = _STRING.match(text, start)
        return string.end() if string else len(text)
    if first not in "[{":
        scalar = _SCALAR.match(text, start)
        return scalar.end() if scalar else start
    depth, i = 0, start
    while i < len(text):
        char = text[i]
        if char == '"':
            string = _STRING.match(text, i)
            if string is None:
                return len(text)
            i = string.end()
            continue
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(text)


def mask_text(text: str, hidden: Callable[[str], bool]) -> str:
    """``text`` (JSON, possibly cut short or not JSON at all) with the value of every key
    ``hidden`` accepts replaced by ``"****"``, at any depth. Keys are read decoded (a
    ``"p\\u0069n"`` is a ``pin``); so are the keys of ``key=value`` pairs."""
    parts: list[str] = []
    kept = searched = 0
    while (string := _STRING.search(text, searched)) is not None:
        searched = string.end()
        colon = _SPACE.match(text, searched)
        after = colon.end() if colon else searched
        if after >= len(text) or text[after] != ":":
            continue
        try:
            key = json.loads(string.group())
        except ValueError:
            continue
        if isinstance(key, str) and hidden(key):
            space = _SPACE.match(text, after + 1)
            value = space.end() if space else after + 1
            parts.append(text[kept:value])
            parts.append(f'"{MASK}"')
            kept = searched = _value_end(text, value)
    parts.append(text[kept:])
    masked = "".join(parts)
    if "=" in masked:

        def pair(match: re.Match[str]) -> str:
            key = unquote_plus(match.group(1))
            return f"{match.group(1)}={MASK}" if hidden(key) else match.group(0)

        masked = _PAIR.sub(pair, masked)
    return masked


def mask_body(body: Any) -> Any:
    """``body`` with its PINs replaced by ``****`` (the same object when it has none)."""
    if isinstance(body, dict):
        if any(isinstance(key, str) and is_pin_key(key) for key in body):
            return {k: (MASK if is_pin_key(k) else v) for k, v in body.items()}
        return body
    if isinstance(body, str):
        lowered = body.lower()
        if "pin" in lowered or "\\" in body or "%" in body:
            return mask_text(body, is_pin_key)
    return body


def _int64(digits: str) -> int:
    number = int(digits)
    if not -(2**63) <= number <= MAX_SEQ:
        raise ValueError("an integer JSON cannot carry as sent")
    return number


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_object(text: str) -> dict[str, Any] | None:
    """The JSON object ``text`` holds, or None when it cannot be shown as sent (not an
    object, an integer beyond 64 bits, nesting an answer cannot carry)."""
    try:
        data = json.loads(text, parse_int=_int64, parse_constant=_no_constant)
        jsoncodec.dumps(data)  # what the answer will do with it
    except (ValueError, TypeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def takes_pin(method: str, path: str) -> bool:
    """A request that may carry a PIN: a verify (``POST /otp/{otpId}``) or a near miss."""
    return method == "POST" and path.startswith("/otp/")


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
    # The body's text (at most MAX_BODY_TEXT characters, secrets masked), or None (a
    # record written by an earlier version may hold the parsed object instead).
    body: Any = None
    error: dict[str, Any] | None = None  # {"type", "code", "message"}
    latency_ms: float = 0.0
    rules: list[str] = field(default_factory=list)
    body_json: bool = False  # ``body`` is a whole JSON object: shown parsed

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
            "body": self.shown_body(pins=pins),
            "status": self.status,
            "error": self.error,
            "latencyMs": self.latency_ms,
            "rules": self.rules,
        }

    def shown_body(self, *, pins: bool = False) -> Any:
        """The body as a view shows it: a JSON object parsed (when it can be shown as
        sent), else its text; PINs masked unless ``pins``, whatever the body's form (the
        text of a verify that is not JSON is not shown at all)."""
        body = self.body
        if isinstance(body, str):
            if self.body_json and (parsed := parse_object(body)) is not None:
                return parsed if pins else mask_body(parsed)
            verify = takes_pin(self.method, self.path)
            if not pins and verify and not body.lstrip().startswith("{"):
                return f"{MASK} (a body that is not JSON: shown with pins=show)"
        return body if pins else mask_body(body)

    def to_record(self) -> dict[str, Any]:
        """Everything, PINs included (a store's copy)."""
        return {
            "seq": self.seq, "at": self.at, "method": self.method, "path": self.path,
            "status": self.status, "request_id": self.request_id, "account": self.account,
            "otp_id": self.otp_id, "phone_number": self.phone_number, "body": self.body,
            "error": self.error, "latency_ms": self.latency_ms, "rules": self.rules,
            "body_json": self.body_json,
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
