"""Where OTPs and messages are kept: the :class:`Store` protocol and its backends."""

from __future__ import annotations

from typing import Protocol

from otpsim.domain.message import Message
from otpsim.domain.otp import Otp


class Store(Protocol):
    """Storage of OTPs and messages. Listing methods return newest first.

    ``save_*`` both inserts and updates: a backend that keeps copies (SQLite) must
    write the object's current state.
    """

    def save_otp(self, otp: Otp) -> None: ...

    def get_otp(self, otp_id: str) -> Otp | None: ...

    def list_otps(
        self,
        *,
        phone_number: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[Otp]: ...

    def pending_otps(self) -> list[Otp]: ...

    def save_message(self, message: Message) -> None: ...

    def list_messages(
        self,
        *,
        phone_number: str | None = None,
        otp_id: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[Message]: ...

    def clear_messages(self) -> None: ...

    def clear(self) -> None: ...
