"""A tiny in-process publish/subscribe bus with a versioned event shape.

The simulator publishes what happens (``message.created``, ``message.delivered``,
``otp.created``, ``otp.updated``, ``clock``, ``reset``); the live inbox, the callback
dispatcher and waiting requests listen. Listeners are plain functions called
synchronously in publish order; they must not block (an async consumer puts the event
on its own queue). A listener that raises is logged and never breaks the publisher.

Example::

    bus = EventBus()
    unsubscribe = bus.subscribe(lambda event: print(event.type))
    bus.publish("reset", {})
    unsubscribe()
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

EVENT_VERSION = 1

log = logging.getLogger(__name__)

Listener = Callable[["Event"], None]


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened: ``{"v": 1, "type": ..., "data": {...}}`` on the wire."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    v: int = EVENT_VERSION

    def to_json(self) -> dict[str, Any]:
        return {"v": self.v, "type": self.type, "data": self.data}


class EventBus:
    """Synchronous fan-out to subscribed listeners."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns a function that removes it again."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def publish(self, type: str, data: dict[str, Any] | None = None) -> Event:
        event = Event(type, data or {})
        # Iterate over a copy: a listener may unsubscribe itself while handling.
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", type)
        return event
