"""How much a store keeps: at most ``max_messages`` messages (and as many OTPs), and
``max_requests`` entries of the request journal, none older than ``max_age`` seconds of
simulator time. Applied when something is inserted,
oldest first, so memory stays flat under an endless stream."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Retention:
    max_messages: int = 100_000
    max_age: float = 86_400.0
    max_requests: int = 10_000

    def cutoff(self, now: float) -> float:
        """Anything created before this is too old to keep."""
        return now - self.max_age
