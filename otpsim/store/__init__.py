"""Where OTPs and messages are kept: the :class:`Store` protocol and its backends."""

from __future__ import annotations

from typing import Any, Protocol

from otpsim.domain.message import Message
from otpsim.domain.otp import Otp


class Store(Protocol):
    """Storage of OTPs and messages. Listing methods return newest first.

    ``save_*`` both inserts and updates: a backend that keeps copies (SQLite) must
    write the object's current state. ``account`` narrows a query or a deletion to
    what one credential created.
    """

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

    # Persistence hooks: a store that survives restarts keeps these; memory does not.
    def save_delivery(self, record: dict[str, Any]) -> None: ...

    def delete_delivery(self, delivery_id: str) -> None: ...

    def load_deliveries(self) -> list[dict[str, Any]]: ...

    # The callback outbox: items of open callback batches, each written with the status
    # change it reports, so a change answered is a callback that will be sent.
    def add_outbox_item(
        self, delivery_id: str, account: str, url: str, item: dict[str, Any]
    ) -> None: ...

    def delete_outbox(self, delivery_id: str) -> None:
        """Forget a batch's items (as its delivery is saved, in the same transaction)."""
        ...

    def load_outbox(self) -> list[dict[str, Any]]:
        """Every item left, oldest first: ``{"delivery_id", "account", "url", "item"}``."""
        ...

    def save_clock(self, state: dict[str, Any]) -> None: ...

    def load_clock(self) -> dict[str, Any] | None: ...

    async def durable(self) -> None:
        """Return once everything written so far would survive a crash."""
        ...

    def close(self) -> None: ...
