"""The scheduler under a flood on a frozen clock (issue #13's attacker finding: with
``--clock-frozen true`` no expiry ever comes due, and sweeping the stale ones out of the
heap read the store once per job, on the event loop: every request stalled 3.77 s around
the 201,023rd ``POST /otp`` with ``--db``)."""

from __future__ import annotations

from typing import Any

from otpsim.clock import Clock
from otpsim.config import Settings
from otpsim.domain.otp import Otp, Status
from otpsim.engine import Kind, Simulator
from otpsim.events import Event
from otpsim.store.memory import MemoryStore
from otpsim.store.retention import Retention

KEPT = 100  # --max-messages: the store keeps the newest 100 OTPs
FLOOD = 3_000  # past the sweep threshold (2 * KEPT + 1024) twice


class CountingStore(MemoryStore):
    """A memory store that counts the reads of single OTPs (a SELECT with --db)."""

    def __init__(self, retention: Retention) -> None:
        super().__init__(retention)
        self.reads = 0

    def get_otp(self, otp_id: str) -> Otp | None:
        self.reads += 1
        return super().get_otp(otp_id)


def flooded() -> tuple[Simulator, CountingStore]:
    settings = Settings(max_messages=KEPT, clock_frozen=True)
    store = CountingStore(Retention(settings.max_messages, settings.max_age))
    sim = Simulator(settings, clock=Clock(start=1_700_000_000, frozen=True), store=store)
    sim.recover()
    return sim, store


async def test_sweeping_stale_expiries_reads_nothing_from_the_store() -> None:
    sim, store = flooded()
    for n in range(FLOOD):
        otp = await sim.create_otp({"phoneNumber": f"+3361{n:07d}"}, account="flood")
        if n % 2:  # verified: its expiry is stale at once
            message = sim.latest_message(otp_id=otp.otp_id)
            assert message is not None
            sim.verify(otp.otp_id, {"pin": message.pin})
    reads_by_verify = FLOOD // 2  # verify looks its OTP up; nothing else may
    assert store.reads == reads_by_verify
    # The sweeps did run: what waits is bounded by retention, not by the flood.
    assert sim.timers.pending(Kind.EXPIRY) <= 2 * KEPT + 1024  # type: ignore[attr-defined]


async def test_after_the_flood_the_kept_otps_still_expire_at_their_time() -> None:
    sim, _ = flooded()
    expired: list[dict[str, Any]] = []

    def on_update(event: Event) -> None:
        if event.data["status"] == "EXPIRED":
            expired.append(event.data)

    sim.subscribe(on_update, "otp.updated")
    verified = set()
    for n in range(FLOOD):
        otp = await sim.create_otp({"phoneNumber": f"+3361{n:07d}"}, account="flood")
        if n % 3 == 0:
            message = sim.latest_message(otp_id=otp.otp_id)
            assert message is not None
            sim.verify(otp.otp_id, {"pin": message.pin})
            verified.add(otp.otp_id)
    kept_pending = sim.list_otps(status=Status.PENDING)
    assert 0 < len(kept_pending) < KEPT
    ttl = sim.settings.default_ttl
    sim.move_clock(advance=ttl)
    # Every OTP the store kept PENDING expires, once, at its dateExpires; none verified does.
    assert sorted(e["otpId"] for e in expired) == sorted(o.otp_id for o in kept_pending)
    assert all(e["dateUpdated"] == e["dateExpires"] for e in expired)
    assert not verified & {e["otpId"] for e in expired}
    assert sim.list_otps(status=Status.PENDING) == []
