"""What each of otpsim's features costs a ``POST /otp``: a ledger in instructions.

    python bench/ledger.py [--requests 600] [--only FEATURE,...] [--no-references]

Runs ``otpsim serve`` (defaults, this checkout) under callgrind as
``bench/instructions.py`` does, once with everything and once with each feature below
switched off by a patch applied before the app is built, then with all of them off;
and, for scale, ``bench/lean.py --store`` (the contract's per-request work and a
bounded store, nothing else) and ``bench/ceiling.py`` (a fixed 201). Prints
instructions per request and what each feature's absence saves. Instructions are not
time, but they are what other load on the machine cannot move (~1 % run to run); the
"~us" column scales them by ``--us-per-k`` (CPU time per thousand instructions
measured on a quiet machine: 212 us for 581.5k, round 4).

A feature switched off here is a measurement, not an option: the server then answers
the same 201 but, e.g., without a journal entry, rate headers or an SMS line. Features:

* ``sms-log``: the ``SMS to ... from ...`` line on stderr (the bus still dispatches);
* ``journal``: the request journal's entry (``/_sim/requests``);
* ``events``: the event bus (SMS line, live inbox, callbacks, waiters, status counts);
* ``metrics``: the request counter and duration histogram;
* ``admission``: authentication and the rate limiter (one fixed answer instead);
* ``expiry``: scheduling the OTP's expiry;
* ``delivery``: the carrier's delivery of the SMS (a timer and ``message.delivered``);
* ``store``: keeping the OTP and its message;
* ``balance``: the account's balance check and charge.

Each server runs as ``bench/instructions.py``'s do (wall-clock cadences spaced by
``--slowdown``); ``ledger.switch_off(FEATURES)`` is what each applies before it starts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from instructions import free_port, measure_command, serve_command  # noqa: E402


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


def _off(owner: Any, name: str, replacement: Any = _nothing) -> None:
    """Replace ``owner.name``, which must exist: a renamed function must fail the ledger
    loudly, not leave it measuring a patch that nothing calls."""
    if not callable(getattr(owner, name, None)):
        raise SystemExit(f"ledger: {owner.__name__}.{name} is gone: update bench/ledger.py")
    setattr(owner, name, replacement)


def _off_sms_log() -> None:
    from otpsim.server import app

    _off(app, "log_sms", lambda settings: _nothing)


def _off_journal() -> None:
    from otpsim.server import journal

    _off(journal, "record")


def _off_events() -> None:
    from otpsim.events import EventBus

    _off(EventBus, "publish")


def _off_metrics() -> None:
    from otpsim.server.metrics import _RequestStats

    _off(_RequestStats, "observe")


def _off_admission() -> None:
    from otpsim.engine.simulator import Simulator

    admit = Simulator.admit
    kept: list[Any] = []

    def once(self: Simulator, caller: Any, scope: str | None) -> Any:
        if not kept:
            kept.append(admit(self, caller, scope))
        return kept[0]

    _off(Simulator, "admit", once)


def _off_expiry() -> None:
    from otpsim.engine.simulator import Simulator

    _off(Simulator, "_expect_expiry")


def _off_delivery() -> None:
    from otpsim.engine.carrier import Carrier

    _off(Carrier, "submit")


def _off_store() -> None:
    from otpsim.store.memory import MemoryStore

    for name in ("save_otp", "save_message", "save_request"):
        _off(MemoryStore, name)


def _off_balance() -> None:
    from otpsim.domain.balance import Balances

    _off(Balances, "check")
    _off(Balances, "charge")


FEATURES: dict[str, Callable[[], None]] = {
    "sms-log": _off_sms_log,
    "journal": _off_journal,
    "events": _off_events,
    "metrics": _off_metrics,
    "admission": _off_admission,
    "expiry": _off_expiry,
    "delivery": _off_delivery,
    "store": _off_store,
    "balance": _off_balance,
}


def switch_off(features: str) -> None:
    """Apply the patches of ``features`` (comma-separated) to this process."""
    for name in filter(None, features.split(",")):
        FEATURES[name]()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--only", default=",".join(FEATURES), help="features to switch off")
    parser.add_argument("--no-references", action="store_true", help="skip lean and ceiling")
    parser.add_argument("--us-per-k", type=float, default=212.3 / 581.5)
    parser.add_argument("--slowdown", type=float, default=50.0, help="see instructions.py")
    args = parser.parse_args()
    args.path, args.method, args.keep = "/otp", "POST", False
    chosen = [f for f in args.only.split(",") if f]
    unknown = [f for f in chosen if f not in FEATURES]
    if unknown:
        parser.error(f"unknown feature(s) {', '.join(unknown)}; known: {', '.join(FEATURES)}")

    def otpsim(off: str) -> float:
        port = free_port()
        patch = [
            f"sys.path.insert(0, {str(HERE)!r})",
            "import ledger",
            f"ledger.switch_off({off!r})",
        ]
        return measure_command(serve_command(port, args.slowdown, *patch), port, args)

    def show(name: str, per: float, saved: float | None) -> None:
        line = f"{name:>22}: {per / 1000:8.1f} k instructions/request"
        if saved is not None:
            us = saved / 1000 * args.us_per_k
            line += f"  saves {saved / 1000:7.1f} k ({saved / full:6.1%}, ~{us:5.1f} us)"
        print(line, flush=True)

    full = otpsim("")
    show("everything", full, None)
    for feature in chosen:
        show(f"without {feature}", per := otpsim(feature), full - per)
    if len(chosen) > 1:
        show("without all of them", per := otpsim(",".join(chosen)), full - per)
    if not args.no_references:
        for name, script, extra in (("lean app + store", "lean.py", ["--store"]),
                                    ("ceiling", "ceiling.py", [])):  # fmt: skip
            port = free_port()
            command = [sys.executable, str(HERE / script), str(port), *extra]
            show(name, per := measure_command(command, port, args), full - per)


if __name__ == "__main__":
    main()
