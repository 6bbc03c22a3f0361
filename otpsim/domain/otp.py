"""The OTP entity and its state machine.

PENDING is the start. From PENDING: the correct PIN makes it VERIFIED; the TTL
passing makes it EXPIRED; wrong PINs reaching maxAttempts make it FAILED; a cancel
makes it CANCELLED. The other four statuses are final.

Methods never raise for a refused action: they return the error to answer (an
:class:`~otpsim.errors.ErrorSpec`) together with whether the OTP changed, because a
refused verification can still change state (a wrong PIN counts an attempt) and the
caller must record and announce that before it answers.

Example::

    otp = Otp.issue(request, pin="123456", otp_id="...", now=0.0, account="key")
    otp.verify("000000", now=1.0)   # Verdict(changed=True, error=E.PIN_WRONG)
    otp.verify("123456", now=2.0)   # Verdict(changed=True, error=None); VERIFIED
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from otpsim.clock import iso
from otpsim.domain import pins
from otpsim.errors import E, ErrorSpec


class Status(StrEnum):
    PENDING = "PENDING"
    VERIFIED = "VERIFIED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


# A PIN kept in an attempt's history is cut to this many characters (then "…"): the
# longest a PIN can be (pinLength 10). A longer one cannot match; it is a wrong PIN.
MAX_KEPT_PIN = 10

# The error a verification gets when the OTP is already in a final status.
_FINAL_VERIFY_ERRORS: dict[Status, ErrorSpec] = {
    Status.VERIFIED: E.OTP_ALREADY_VERIFIED,
    Status.CANCELLED: E.OTP_CANCELLED,
    Status.EXPIRED: E.OTP_ALREADY_EXPIRED,
    Status.FAILED: E.OTP_ALREADY_FAILED,
}


# The provider's OTP object: the fields of Otp.to_api, in order (Otp.to_sim starts with
# them), so an event's OTP view can be cut down to the API's without the entity.
API_FIELDS: tuple[str, ...] = (
    "otpId", "trackId", "phoneNumber", "countryIso", "status", "cost", "parts",
    "maxAttempts", "attempts", "ttl", "otpCallbackUrl", "dateCreated", "dateExpires",
)  # fmt: skip


def api_view(sim_view: dict[str, Any]) -> dict[str, Any]:
    """The provider's OTP object from the control API's view (``Otp.to_sim``)."""
    return {name: sim_view[name] for name in API_FIELDS}


@dataclass(frozen=True, slots=True)
class OtpRequest:
    """A validated ``POST /otp`` request, defaults applied (see ``domain.request``)."""

    phone_number: str
    country_iso: str
    sender: str
    template: str
    template_language: str | None
    ttl: int
    max_attempts: int
    pin_type: str
    pin_length: int
    track_id: str | None
    callback_url: str | None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an action did: whether the OTP changed, and the error to answer, if any."""

    changed: bool
    error: ErrorSpec | None = None


@dataclass(slots=True)
class VerifyAttempt:
    at: float
    pin: str
    result: str  # "VERIFIED", or the error type answered (invalid_pin, otp_expired, ...)
    code: int | None

    def to_json(self) -> dict[str, Any]:
        return {"at": iso(self.at), "pin": self.pin, "result": self.result, "code": self.code}


@dataclass(slots=True)
class Otp:
    otp_id: str
    account: str
    request: OtpRequest
    pin: str
    created_at: float
    cost: float
    parts: int
    status: Status = Status.PENDING
    attempts: int = 0
    updated_at: float = 0.0
    # Verification attempts while PENDING (at most maxAttempts + 1); None until the first
    # (an empty list per OTP adds up).
    history: list[VerifyAttempt] | None = None
    # Attempts on an OTP already in a final status: counted, not kept, so that what an
    # OTP holds stays bounded however often a client insists.
    attempts_after_final: int = 0

    @classmethod
    def issue(
        cls,
        request: OtpRequest,
        *,
        otp_id: str,
        pin: str,
        now: float,
        account: str,
        cost: float,
        parts: int,
    ) -> Otp:
        # Positional (in field order): keywords cost a dict per OTP.
        return cls(otp_id, account, request, pin, now, cost, parts, Status.PENDING, 0, now)

    @property
    def expires_at(self) -> float:
        return self.created_at + self.request.ttl

    def is_due(self, now: float) -> bool:
        """True when the OTP is PENDING but its TTL has passed."""
        return self.status is Status.PENDING and now >= self.expires_at

    def expire_if_due(self, now: float) -> bool:
        """Record the expiry of a PENDING OTP whose TTL has passed; True if it changed.

        It expired at ``dateExpires``, whenever that is noticed (a clock jump, a late
        read), so that is the time it records."""
        if not self.is_due(now):
            return False
        self._move(Status.EXPIRED, self.expires_at)
        return True

    def verify(self, pin: str, now: float) -> Verdict:
        """Check a PIN against this OTP, following the contract's verify table.

        An attempt made while the OTP is PENDING is kept in its history (its PIN cut to
        :data:`MAX_KEPT_PIN` characters); one on an OTP already final is only counted.
        A PIN longer than any PIN can be is simply a wrong PIN.
        """
        if self.status is not Status.PENDING:
            return self._after_final()
        if self.expire_if_due(now):
            # The first PIN to arrive after the TTL: "The PIN has expired" (2028);
            # every later one: "The OTP has expired" (2025).
            return self._record(now, pin, E.PIN_EXPIRED, changed=True)
        if pins.matches(self.pin, pin):
            self._move(Status.VERIFIED, now)
            return self._record(now, pin, None, changed=True)
        self.attempts += 1
        self.updated_at = now
        if self.attempts >= self.request.max_attempts:
            self._move(Status.FAILED, now)
            return self._record(now, pin, E.OTP_MAX_ATTEMPTS, changed=True)
        return self._record(now, pin, E.PIN_WRONG, changed=True)

    def cancel(self, now: float) -> Verdict:
        """Cancel a PENDING OTP (an OTP past its TTL is EXPIRED, not cancellable)."""
        changed = self.expire_if_due(now)
        if self.status is Status.CANCELLED:
            return Verdict(changed, E.CANCEL_ALREADY_CANCELLED)
        if self.status is not Status.PENDING:
            return Verdict(changed, E.CANCEL_NOT_PENDING)
        self._move(Status.CANCELLED, now)
        return Verdict(True)

    def _after_final(self) -> Verdict:
        """An attempt on an OTP already final: counted (the OTP changed), not kept."""
        told = self.attempts_after_final > 0 or any(
            a.code == E.PIN_EXPIRED.code for a in self.history or ()
        )
        self.attempts_after_final += 1
        if self.status is Status.EXPIRED and not told:
            # An expiry recorded by the clock: the first late PIN is still told 2028.
            return Verdict(False, E.PIN_EXPIRED)
        return Verdict(False, _FINAL_VERIFY_ERRORS[self.status])

    def _move(self, status: Status, now: float) -> None:
        self.status = status
        self.updated_at = now

    def _record(self, now: float, pin: str, error: ErrorSpec | None, *, changed: bool) -> Verdict:
        result = "VERIFIED" if error is None else error.type
        if self.history is None:
            self.history = []
        if len(pin) > MAX_KEPT_PIN:
            pin = pin[:MAX_KEPT_PIN] + "…"
        self.history.append(VerifyAttempt(now, pin, result, None if error is None else error.code))
        return Verdict(changed, error)

    # -- records (storage) ---------------------------------------------------------------
    # A store that keeps copies writes the object as JSON (orjson encodes dataclasses
    # field by field, enums by value) and reads it back with from_record.

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Otp:
        return cls(
            otp_id=data["otp_id"],
            account=data["account"],
            request=OtpRequest(**data["request"]),
            pin=data["pin"],
            created_at=data["created_at"],
            cost=data["cost"],
            parts=data["parts"],
            status=Status(data["status"]),
            attempts=data["attempts"],
            updated_at=data["updated_at"],
            history=[VerifyAttempt(**a) for a in data["history"] or ()] or None,
            attempts_after_final=data.get("attempts_after_final", 0),  # schema 1 had none
        )

    # -- views -----------------------------------------------------------------------

    def to_api(self) -> dict[str, Any]:
        """The provider's OTP object (never the PIN)."""
        r = self.request
        return {
            "otpId": self.otp_id,
            "trackId": r.track_id,
            "phoneNumber": r.phone_number,
            "countryIso": r.country_iso,
            "status": self.status._value_,  # (.value: a property, slower)
            "cost": self.cost,
            "parts": self.parts,
            "maxAttempts": r.max_attempts,
            "attempts": self.attempts,
            "ttl": r.ttl,
            "otpCallbackUrl": r.callback_url,
            "dateCreated": iso(self.created_at),
            "dateExpires": iso(self.expires_at),
        }

    def to_sim(self) -> dict[str, Any]:
        """The control API's view: the OTP object plus PIN, request and attempt history."""
        r = self.request
        return {
            **self.to_api(),
            "pin": self.pin,
            "pinType": r.pin_type,
            "pinLength": r.pin_length,
            "from": r.sender,
            "templateLanguage": r.template_language,
            "account": self.account,
            "dateUpdated": iso(self.updated_at),
            "verifyAttempts": [a.to_json() for a in self.history or ()],
            "verifyAttemptsAfterFinal": self.attempts_after_final,
        }
