"""The simulated network: where each SMS's fate is decided.

Today's network delivers every SMS at once. Scenarios (rules per number or
pattern: delays, undelivered, provider errors, sequences) plug in here.

Example::

    carrier = Carrier(clock)
    carrier.submit(message, on_delivered=lambda m: print("arrived", m.message_id))
"""

from __future__ import annotations

from collections.abc import Callable

from otpsim.clock import Clock
from otpsim.domain.message import Message


class Carrier:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def submit(self, message: Message, on_delivered: Callable[[Message], None]) -> None:
        """Hand an SMS to the network; ``on_delivered`` runs when it reaches the phone."""
        message.deliver(self._clock.time())
        on_delivered(message)
