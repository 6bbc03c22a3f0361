"""A tiny in-process publish/subscribe bus with a versioned event shape.

The simulator publishes what happens (``message.created``, ``message.delivered``,
``otp.created``, ``otp.updated``, ``clock``, ``reset``); the live inbox, the callback
dispatcher and waiting requests listen. Listeners are plain functions called
synchronously in publish order; they must not block (an async consumer puts the event
on its own queue), and one that keeps an event must read its ``data`` during the call
(data given as a function is built at its first read, so it shows the state of then).
A listener that raises is logged and never breaks the publisher. A listener may be
*dormant* (``subscribe(..., awake=False)``, :meth:`EventBus.sleep`): it keeps its place
in the order but is not called until :meth:`EventBus.wake` (the live hub sleeps while no
browser is connected, so an event nobody listens to costs next to nothing).

Example::

    bus = EventBus()
    unsubscribe = bus.subscribe(lambda event: print(event.type))
    bus.subscribe(lambda event: print(event.data["pin"]), "message.created")
    bus.publish("reset", {})
    unsubscribe()
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

EVENT_VERSION = 1

log = logging.getLogger(__name__)

Listener = Callable[["Event"], None]


class Event:
    """One thing that happened: ``{"v": 1, "type": ..., "data": {...}}`` on the wire.

    ``data`` may be given as a function: it is then built once, the first time a
    listener reads it, so events nobody looks at cost nothing to describe.

    ``subject`` is the object the event is about, when the publisher gives it (the
    :class:`~otpsim.domain.message.Message` of ``message.created``): an in-process
    listener that needs a few of its fields reads them there, and the payload is built
    only if a listener wants the payload. Never on the wire.
    """

    __slots__ = ("_data", "subject", "type", "v")

    def __init__(
        self,
        type: str,
        data: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
        v: int = EVENT_VERSION,
        *,
        subject: object = None,
    ) -> None:
        self.type = type
        self._data = {} if data is None else data
        self.v = v
        self.subject = subject

    @property
    def data(self) -> dict[str, Any]:
        if callable(self._data):
            self._data = self._data()
        return self._data

    def to_json(self) -> dict[str, Any]:
        return {"v": self.v, "type": self.type, "data": self.data}


class EventBus:
    """Synchronous fan-out to subscribed listeners, in the order they subscribed.

    A listener may name the event types it wants; it is then never called for others
    (a ``POST /otp`` publishes three events, and most listeners care about one).
    """

    def __init__(self) -> None:
        self._listeners: list[tuple[Listener, frozenset[str] | None]] = []
        self._routes: dict[str, tuple[Listener, ...]] = {}  # per type, rebuilt on change
        # By identity (see _identity): any callable may listen, hashable or not, and two
        # listeners that compare equal are still two.
        self._dormant: set[object] = set()

    def subscribe(self, listener: Listener, *types: str, awake: bool = True) -> Callable[[], None]:
        """Add a listener (for ``types`` only, if given; dormant unless ``awake``);
        returns a function that removes it again."""
        entry = (listener, frozenset(types) if types else None)
        self._listeners.append(entry)
        if not awake:
            self._dormant.add(_identity(listener))
        self._routes.clear()

        def unsubscribe() -> None:
            if entry in self._listeners:
                self._listeners.remove(entry)
                me = _identity(listener)
                if all(_identity(f) != me for f, _ in self._listeners):
                    self._dormant.discard(me)
                self._routes.clear()

        return unsubscribe

    def wake(self, listener: Listener) -> None:
        """A dormant listener is called again, in the place it subscribed."""
        if _identity(listener) in self._dormant:
            self._dormant.discard(_identity(listener))
            self._routes.clear()

    def sleep(self, listener: Listener) -> None:
        """The listener is not called until :meth:`wake` (it keeps its place)."""
        if _identity(listener) not in self._dormant:
            self._dormant.add(_identity(listener))
            self._routes.clear()

    def listening(self, type: str) -> int:
        """How many listeners (awake) an event of ``type`` reaches."""
        route = self._routes.get(type)
        return len(self._route(type) if route is None else route)

    def _route(self, type: str) -> tuple[Listener, ...]:
        dormant = self._dormant
        route = tuple(
            f
            for f, types in self._listeners
            if (types is None or type in types) and (not dormant or _identity(f) not in dormant)
        )
        self._routes[type] = route
        return route

    def publish(
        self,
        type: str,
        data: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
        *,
        subject: object = None,
    ) -> Event:
        event = Event(type, data, subject=subject)
        # A tuple: a listener may unsubscribe itself (or others) while handling.
        route = self._routes.get(type)
        if route is None:
            route = self._route(type)
        elif not route:
            return event
        for listener in route:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", type)
        return event


def _identity(listener: Listener) -> object:
    """What makes a listener the same one: the object itself, by identity; for a bound
    method (a new object each time it is looked up), its object and function."""
    owner = getattr(listener, "__self__", None)
    function = getattr(listener, "__func__", None)
    if owner is not None and function is not None:
        return (id(owner), id(function))
    return id(listener)
