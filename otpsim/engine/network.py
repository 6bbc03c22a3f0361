"""The network model: a typed value the engine runs on, whoever wrote it.

A :class:`NetworkSpec` is what a scenario's ``network`` half means (carrier rules, seed,
clock mode, OTP defaults, rate limit, balance, fixed PINs). The scenario package parses YAML into
one; the pytest plugin or a test may build one directly. The engine never reads YAML.

Example::

    spec = NetworkSpec(Network(rules=(Rule.of("*", Fate(Action.UNDELIVERED)),)))
    sim.use_scenario(spec, name="nothing arrives")
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from otpsim.domain.defaults import OtpDefaults
from otpsim.engine.carrier import (
    ERROR_STATUSES,
    FIRED,
    Action,
    Endpoint,
    Fate,
    Fault,
    FaultFired,
    FaultKind,
    Network,
    Rule,
    note_fired,
)
from otpsim.entropy import MAX_SEED

# API field name -> OtpDefaults attribute, for network.defaults.
DEFAULT_FIELDS = {
    "from": "sender", "template": "template", "ttl": "ttl", "maxAttempts": "max_attempts",
    "pinType": "pin_type", "pinLength": "pin_length",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    """The ``network`` half: carrier rules plus the app state a scenario may set."""

    carrier: Network = field(default_factory=Network)
    defaults: Mapping[str, Any] = field(default_factory=dict)  # OtpDefaults attributes
    clock_frozen: bool | None = None
    clock_start: float | None = None
    rate_limit: tuple[int | None, float] | None = None  # (limit or None = off, window)
    balance: float | None = None  # every account's starting balance (None: as configured)
    fixed_pins: tuple[tuple[str, str], ...] = ()  # (match, PIN): see Settings.fixed_pins

    def otp_defaults(self, base: OtpDefaults) -> OtpDefaults:
        return replace(base, **dict(self.defaults))

    def to_json(self) -> dict[str, Any]:
        api_names = {v: k for k, v in DEFAULT_FIELDS.items()}
        data = self.carrier.to_json()
        data["defaults"] = {api_names[k]: v for k, v in self.defaults.items()}
        data["clock"] = {"frozen": self.clock_frozen, "start": self.clock_start}
        data["rateLimit"] = (
            None
            if self.rate_limit is None
            else {"limit": self.rate_limit[0], "window": self.rate_limit[1]}
        )
        data["balance"] = self.balance
        data["fixedPins"] = [{"match": m, "pin": p} for m, p in self.fixed_pins]
        return data


__all__ = [
    "DEFAULT_FIELDS", "ERROR_STATUSES", "FIRED", "MAX_SEED", "Action", "Endpoint", "Fate",
    "Fault", "FaultFired", "FaultKind", "Network", "NetworkSpec", "Rule", "note_fired",
]  # fmt: skip
