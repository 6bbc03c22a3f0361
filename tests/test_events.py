"""The event bus: typed subscriptions, subscription order, lazy data, failing listeners."""

from __future__ import annotations

from typing import Any

import pytest

from otpsim.events import Event, EventBus


def test_typed_listeners_hear_only_their_types_in_subscription_order() -> None:
    bus = EventBus()
    heard: list[tuple[str, str]] = []
    bus.subscribe(lambda e: heard.append(("all", e.type)))
    bus.subscribe(lambda e: heard.append(("sms", e.type)), "message.created", "message.delivered")
    stop_otp = bus.subscribe(lambda e: heard.append(("otp", e.type)), "otp.created")
    for type in ("otp.created", "message.created", "reset"):
        bus.publish(type)
    stop_otp()
    bus.publish("otp.created")
    assert heard == [
        ("all", "otp.created"), ("otp", "otp.created"),
        ("all", "message.created"), ("sms", "message.created"),
        ("all", "reset"),
        ("all", "otp.created"),
    ]  # fmt: skip


def test_data_nobody_reads_is_never_built() -> None:
    bus = EventBus()
    built: list[int] = []

    def data() -> dict[str, Any]:
        built.append(1)
        return {"pin": "123456"}

    bus.subscribe(lambda e: None, "message.created")
    bus.subscribe(lambda e: e.data, "otp.created")
    bus.publish("message.created", data)
    assert built == []
    event = bus.publish("otp.created", data)
    assert built == [1]
    assert event.to_json() == {"v": 1, "type": "otp.created", "data": {"pin": "123456"}}


def test_a_failing_listener_is_logged_and_the_others_still_hear(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    heard: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    unsubscribe = bus.subscribe(heard.append)
    bus.subscribe(lambda e: unsubscribe(), "reset")  # unsubscribing while handling is safe
    bus.publish("reset")
    bus.publish("reset")
    assert [e.type for e in heard] == ["reset"]
    assert "event listener failed on reset" in caplog.text


def test_a_subject_reaches_listeners_and_never_the_wire() -> None:
    bus = EventBus()
    seen: list[object] = []
    built: list[int] = []

    def payload() -> dict[str, object]:
        built.append(1)
        return {"id": "m1"}

    thing = object()
    bus.subscribe(lambda e: seen.append(e.subject))
    event = bus.publish("message.created", payload, subject=thing)
    assert seen == [thing]
    assert built == []  # nobody read the payload: it was never built
    assert event.to_json() == {"v": 1, "type": "message.created", "data": {"id": "m1"}}
    assert bus.publish("reset").subject is None


def test_a_dormant_listener_hears_nothing_and_keeps_its_place_when_woken() -> None:
    """The live hub sleeps while no browser is connected (events then cost it nothing),
    and wakes in the place it subscribed: what it hears keeps the publish order."""
    bus = EventBus()
    heard: list[tuple[str, str]] = []

    def hub(event: Event) -> None:
        heard.append(("hub", event.type))

    def nested(event: Event) -> None:  # publishes while handling, as the dispatcher does
        heard.append(("dispatcher", event.type))
        bus.publish("callback.attempt")

    bus.subscribe(hub, awake=False)
    bus.subscribe(nested, "otp.updated")
    assert bus.listening("otp.created") == 0
    bus.publish("otp.created")
    assert heard == []
    bus.wake(hub)
    assert bus.listening("otp.created") == 1
    bus.publish("otp.updated")
    bus.sleep(hub)
    bus.publish("otp.updated")
    assert heard == [
        ("hub", "otp.updated"),
        ("dispatcher", "otp.updated"),
        ("hub", "callback.attempt"),
        ("dispatcher", "otp.updated"),
    ]


def test_a_listener_that_cannot_be_hashed_still_hears_its_events() -> None:
    """Any callable may listen (a dataclass with ``__call__`` is not hashable), dormant
    listeners beside it or not."""
    from dataclasses import dataclass, field

    @dataclass
    class Recorder:
        seen: list[str] = field(default_factory=list)

        def __call__(self, event: Event) -> None:
            self.seen.append(event.type)

    bus = EventBus()
    recorder, sleeper = Recorder(), Recorder()
    bus.subscribe(recorder)
    bus.subscribe(sleeper, awake=False)
    bus.publish("otp.created", {})
    bus.wake(sleeper)
    bus.publish("otp.updated", {})
    bus.sleep(sleeper)
    bus.publish("otp.expired", {})
    assert recorder.seen == ["otp.created", "otp.updated", "otp.expired"]
    assert sleeper.seen == ["otp.updated"]
