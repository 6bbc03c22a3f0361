"""Both stores behave the same; SQLite also keeps what the dispatcher and clock hand it."""

from __future__ import annotations

import asyncio
import os
import random
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import FR, KEY, create, expect_error

from otpsim import jsoncodec
from otpsim.clock import ClockState
from otpsim.config import Settings
from otpsim.domain.message import Message, SmsStatus
from otpsim.domain.otp import Otp, OtpRequest, Status, VerifyAttempt
from otpsim.errors import OtpsimError
from otpsim.store import AttemptRecord, DeliveryRecord, OutboxItem, Store
from otpsim.store.memory import MemoryStore
from otpsim.store.retention import RetainedMap, Retention
from otpsim.store.sqlite import (
    MIGRATIONS,
    SCHEMA_VERSION,
    SqliteStore,
    StoreUnavailable,
    _FileLock,
)


def otp(n: int, *, account: str = "a", phone: str = "+33612345678", at: float = 0.0) -> Otp:
    request = OtpRequest(
        phone, "FR", "OTPSIM", "code {{pin}}", None, 300, 3, "numbers", 6, None, None
    )
    return Otp.issue(
        request, otp_id=f"otp-{n}", pin=f"{n:06d}", now=at, account=account, cost=0.05, parts=1
    )


def delivery(
    delivery_id: str, account: str, state: str, *, created_at: float = 0.0
) -> DeliveryRecord:
    attempt = AttemptRecord(1, created_at, "http://127.0.0.1:9/hook", 500, None, 1.5, 5.0)
    return DeliveryRecord(
        delivery_id, account, "http://127.0.0.1:9/hook", '{"event": "otp_update"}',
        ("otp-1",), created_at, state, (attempt,), None,
    )  # fmt: skip


def message(n: int, *, account: str = "a", phone: str = "+33612345678", at: float = 0.0) -> Message:
    return Message(
        f"m-{n}",
        f"otp-{n}",
        account,
        phone,
        "FR",
        "OTPSIM",
        f"code {n}",
        f"{n}",
        1,
        "GSM-7",
        at,
        seq=n,
    )


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[type]:
    opened: list[Store] = []

    def make(retention: Retention | None = None) -> Store:
        store: Store = (
            MemoryStore(retention)
            if request.param == "memory"
            else SqliteStore(tmp_path / "otpsim.db", retention=retention)
        )
        opened.append(store)
        return store

    yield make  # type: ignore[misc]
    for store in opened:
        store.close()


def test_otps_round_trip_with_history_and_filters(make_store: type) -> None:
    store = make_store()
    first = otp(1)
    first.history = [VerifyAttempt(1.0, "000000", "invalid_pin", 2029)]
    first.attempts = 1
    store.save_otp(first)
    store.save_otp(otp(2, account="b", phone="+4915123456789"))
    got = store.get_otp("otp-1")
    assert got is not None
    assert got == first
    assert [o.otp_id for o in store.list_otps()] == ["otp-2", "otp-1"]
    assert [o.otp_id for o in store.list_otps(account="b")] == ["otp-2"]
    assert [o.otp_id for o in store.list_otps(phone_number="+33612345678")] == ["otp-1"]
    first.status = Status.VERIFIED
    store.save_otp(first)  # an update keeps its place
    assert [o.otp_id for o in store.list_otps()] == ["otp-2", "otp-1"]
    assert [o.otp_id for o in store.list_otps(status="VERIFIED")] == ["otp-1"]
    assert [o.otp_id for o in store.pending_otps()] == ["otp-2"]
    assert store.count_otps_by_status() == {"VERIFIED": 1, "PENDING": 1}
    assert store.get_otp("nope") is None


def test_messages_round_trip_filters_and_clearing(make_store: type) -> None:
    store = make_store()
    for n in range(1, 4):
        store.save_message(message(n, account="a" if n < 3 else "b"))
    delivered = message(2, account="a")
    delivered.deliver(5.0)
    store.save_message(delivered)
    assert [m.seq for m in store.list_messages()] == [3, 2, 1]
    assert [m.seq for m in store.list_messages(status=SmsStatus.DELIVERED, limit=1)] == [2]
    assert [m.seq for m in store.list_messages(otp_id="otp-1")] == [1]
    assert [m.seq for m in store.queued_messages()] == [1, 3]
    assert store.count_messages_by_status() == {"QUEUED": 2, "DELIVERED": 1}
    store.clear_messages("a")
    assert [m.seq for m in store.list_messages()] == [3]
    store.save_otp(otp(9, account="b"))
    store.clear("b")
    assert store.list_messages() == []
    assert store.list_otps() == []
    assert store.count_messages_by_status() == {}


def test_retention_keeps_the_newest_n(make_store: type) -> None:
    store = make_store(Retention(max_messages=5, max_age=10**9))
    for n in range(1, 21):
        store.save_message(message(n))
        store.save_otp(otp(n))
        assert len(store.list_messages()) <= 5
    assert [m.seq for m in store.list_messages()] == [20, 19, 18, 17, 16]
    assert [o.otp_id for o in store.list_otps()] == [f"otp-{n}" for n in range(20, 15, -1)]
    assert sum(store.count_messages_by_status().values()) == 5


def test_retention_forgets_what_is_too_old(make_store: type) -> None:
    store = make_store(Retention(max_messages=1000, max_age=60))
    store.save_message(message(1, at=0.0))
    store.save_otp(otp(1, at=0.0))
    store.save_message(message(2, at=30.0))
    store.save_message(message(3, at=61.0))  # now 61: what is older than 1.0 goes
    store.save_otp(otp(3, at=61.0))
    assert [m.seq for m in store.list_messages()] == [3, 2]
    assert [o.otp_id for o in store.list_otps()] == ["otp-3"]


def test_sqlite_keeps_deliveries_and_the_clock_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "otpsim.db"
    store = SqliteStore(path)
    store.save_otp(otp(1))
    store.save_delivery(delivery("msg_1", "a", "pending", created_at=1.0))
    store.save_delivery(delivery("msg_1", "a", "delivered", created_at=2.0))
    store.save_delivery(delivery("msg_2", "b", "pending"))
    store.delete_delivery("msg_2")
    store.save_clock(ClockState(offset=12.5, frozen_at=None))
    store.close()
    again = SqliteStore(path)
    assert again.get_otp("otp-1") is not None
    assert again.load_deliveries() == [delivery("msg_1", "a", "delivered", created_at=2.0)]
    assert again.load_clock() == ClockState(offset=12.5, frozen_at=None)
    again.close()


def test_sqlite_keeps_the_callback_outbox_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "otpsim.db"
    store = SqliteStore(path)
    store.add_outbox_item(OutboxItem("msg_1", "a", "http://127.0.0.1:9/hook", {"otpId": "otp-1"}))
    store.add_outbox_item(OutboxItem("msg_2", "b", "http://127.0.0.1:9/hook", {"otpId": "otp-2"}))
    store.add_outbox_item(OutboxItem("msg_1", "a", "http://127.0.0.1:9/hook", {"otpId": "otp-3"}))
    store.add_outbox_item(OutboxItem("msg_4", "a", "http://127.0.0.1:9/other", {"otpId": "otp-4"}))
    store.delete_outbox("msg_4")  # its delivery was made
    store.close()
    again = SqliteStore(path)
    assert [(r.delivery_id, r.item["otpId"]) for r in again.load_outbox()] == [
        ("msg_1", "otp-1"),
        ("msg_2", "otp-2"),
        ("msg_1", "otp-3"),
    ]
    again.clear("a")  # a reset of one account takes its open batches too
    assert [r.account for r in again.load_outbox()] == ["b"]
    again.close()


def test_sqlite_migrates_a_version_1_file(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0])
        db.execute("PRAGMA user_version = 1")
        record = jsoncodec.dumps_text(delivery("msg_1", "a", "pending"))
        db.execute("INSERT INTO deliveries VALUES ('msg_1', 'a', 'pending', ?)", (record,))
    store = SqliteStore(path)
    assert store.load_deliveries() == [delivery("msg_1", "a", "pending")]
    assert store.load_outbox() == []
    store.add_outbox_item(OutboxItem("msg_2", "a", "http://127.0.0.1:9/hook", {"otpId": "otp-1"}))
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def _version_3_file(path: Path) -> None:
    """A database as otpsim wrote it before schema 4 (messages keyed by message_id)."""
    with sqlite3.connect(path) as db:
        for step in MIGRATIONS[:3]:
            db.executescript(step)
        db.execute("PRAGMA user_version = 3")
        db.execute("PRAGMA journal_mode = WAL")
        for n in range(1, 6):
            account = "a" if n < 5 else "b"
            one, sms = otp(n, account=account), message(n, account=account)
            db.execute(
                "INSERT INTO otps VALUES (?, ?, ?, ?, ?, ?)",
                (one.otp_id, account, one.request.phone_number, one.status.value, 0.0,
                 jsoncodec.dumps_text(one)),
            )  # fmt: skip
            db.execute(
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (sms.message_id, sms.seq, sms.otp_id, account, sms.phone_number,
                 sms.status.value, 0.0, jsoncodec.dumps_text(sms)),
            )  # fmt: skip
        db.execute(
            "INSERT INTO meta VALUES ('clock', ?)",
            (jsoncodec.dumps_text(ClockState(12.5, None)),),
        )


def test_sqlite_opens_a_version_3_file_and_keeps_every_record(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    _version_3_file(path)
    store = SqliteStore(path)
    try:
        assert [m.seq for m in store.list_messages()] == [5, 4, 3, 2, 1]
        assert [m.seq for m in store.list_messages(account="a", limit=2)] == [4, 3]
        assert [m.seq for m in store.list_messages(otp_id="otp-3")] == [3]
        assert [m.seq for m in store.list_messages(phone_number="+33612345678")] == [5, 4, 3, 2, 1]
        assert store.list_messages()[0] == message(5, account="b")
        assert [o.otp_id for o in store.list_otps()] == [f"otp-{n}" for n in range(5, 0, -1)]
        assert store.load_clock() == ClockState(12.5, None)
        delivered = message(2)
        delivered.deliver(5.0)
        store.save_message(delivered)  # an update of a migrated row: no second row
        store.save_message(message(6))
        assert [m.seq for m in store.list_messages()] == [6, 5, 4, 3, 2, 1]
        assert store.count_messages_by_status() == {"QUEUED": 5, "DELIVERED": 1}
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexed = {
            row[0]
            for row in db.execute(
                "SELECT i.name FROM pragma_index_list('messages') AS i, "
                "pragma_index_info(i.name) AS c WHERE c.name = 'message_id'"
            )
        }
        assert indexed == set()  # no index on the random message id (see the next test)


async def test_sqlite_at_its_cap_writes_few_more_pages_per_insert_than_young(
    tmp_path: Path,
) -> None:
    """Issue 18: at the retention cap each insert also deletes the oldest row; every
    index page that touches costs a WAL frame (and a checkpoint copy). Counted in
    pages, not time: here young ~2.6 pages per OTP + message, at the cap ~1.9 more
    (schema 4, with the messages' otp_id index keyed by the random OTP id: young ~3.1,
    at the cap ~2.6 more; before schema 4, with the random message_id index too:
    young ~3.7, at the cap ~3.5 more)."""

    async def frames_per_insert(store: SqliteStore, first: int, count: int) -> float:
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for n in range(first, first + count):
            one, sms = otp(n), message(n)
            # Random ids, as the engine draws them (uuid4): spread over their indexes.
            one.otp_id = sms.otp_id = str(uuid.UUID(int=draw.getrandbits(128), version=4))
            sms.message_id = str(uuid.UUID(int=draw.getrandbits(128), version=4))
            store.save_otp(one)
            store.save_message(sms)
            if n % 10 == 9:
                await store.durable()  # the server's batches: ~10 requests per commit
        await store.durable()
        logged = store._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        return float(logged) / count

    draw = random.Random(18)
    retention = Retention(max_messages=3000)
    young = SqliteStore(tmp_path / "young.db", retention=retention, checkpoint_every=3600)
    full = SqliteStore(tmp_path / "full.db", retention=retention, checkpoint_every=3600)
    try:
        await frames_per_insert(full, 0, 3000)
        at_young = await frames_per_insert(young, 3000, 1500)
        at_cap = await frames_per_insert(full, 3000, 1500)
    finally:
        young.close()
        full.close()
    assert at_young < 2.85, (at_young, at_cap)
    assert at_cap - at_young < 2.25, (at_young, at_cap)


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux's /proc/self/io")
async def test_sqlite_at_its_cap_keeps_its_working_set_in_the_page_cache(tmp_path: Path) -> None:
    """Issue 18: with SQLite's default 2 MB page cache, a store at its cap read pages
    back from the file on most inserts (the id index no longer fits) and spilled dirty
    pages mid-batch. Counted in bytes read by the process (the test reads nothing else
    meanwhile): before, ~0.27 pages per OTP + message at a cap of 5,000."""

    def bytes_read() -> int:
        with open("/proc/self/io", encoding="ascii") as io:
            return next(int(line.split()[1]) for line in io if line.startswith("rchar:"))

    draw = random.Random(18)
    store = SqliteStore(
        tmp_path / "otpsim.db", retention=Retention(max_messages=5000), checkpoint_every=3600
    )
    try:
        for round_ in range(2):  # fill to the cap, then measure
            count = 5000 if round_ == 0 else 2000
            began = bytes_read()
            for n in range(count):
                one, sms = otp(n), message(n + 5000 * round_)
                one.otp_id = sms.otp_id = str(uuid.UUID(int=draw.getrandbits(128), version=4))
                store.save_otp(one)
                store.save_message(sms)
                if n % 10 == 9:
                    await store.durable()
            await store.durable()
        pages = (bytes_read() - began) / 4096 / 2000
    finally:
        store.close()
    assert pages < 0.05, pages


async def test_sqlite_a_message_saved_again_in_a_later_batch_is_updated_in_place(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "otpsim.db")
    try:
        store.save_message(message(5))
        await store.durable()
        store.save_message(message(3))  # a lower seq than one written: still a new row
        await store.durable()
        later = message(5)
        later.deliver(9.0)
        store.save_message(later)
        await store.durable()
        assert [(m.seq, m.status) for m in store.list_messages()] == [
            (5, SmsStatus.DELIVERED),
            (3, SmsStatus.QUEUED),
        ]
    finally:
        store.close()
    again = SqliteStore(tmp_path / "otpsim.db")
    try:
        again.save_message(message(5))  # after a reopen too: found, not duplicated
        assert [m.seq for m in again.list_messages()] == [5, 3]
        assert again.list_messages()[0].status is SmsStatus.QUEUED
    finally:
        again.close()


def test_sqlite_schema_version_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "otpsim.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(OtpsimError, match="made by a newer otpsim"):
        SqliteStore(path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OtpsimError, match="cannot use as a database"):
        SqliteStore(junk)


async def test_sqlite_group_commit_is_durable_once_awaited(tmp_path: Path) -> None:
    path = tmp_path / "otpsim.db"
    store = SqliteStore(path)
    store.save_otp(otp(1))
    store.save_otp(otp(2))  # the same batch

    def on_disk() -> int:
        with sqlite3.connect(path) as other:  # another connection sees only commits
            return int(other.execute("SELECT COUNT(*) FROM otps").fetchone()[0])

    assert on_disk() == 0
    await store.durable()
    assert on_disk() == 2
    await store.durable()  # nothing pending: returns at once
    store.save_otp(otp(3))
    store.close()  # closing commits what is pending
    assert on_disk() == 3


async def test_sqlite_batch_writes_each_object_once_and_reads_see_pending_saves(
    tmp_path: Path,
) -> None:
    path = tmp_path / "otpsim.db"
    store = SqliteStore(path, retention=Retention(max_messages=3, max_age=60))
    first = message(1, at=1.0)
    store.save_message(first)
    first.deliver(2.0)
    store.save_message(first)  # saved twice in one batch: one row, the last state
    assert [m.status for m in store.list_messages()] == [SmsStatus.DELIVERED]  # before commit
    await store.durable()
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT seq, status FROM messages").fetchall() == [(1, "DELIVERED")]
    for n in range(2, 7):
        store.save_message(message(n, at=float(n)))
    assert [m.seq for m in store.list_messages()] == [6, 5, 4]  # retention, mid-batch
    store.save_message(message(7, at=100.0))  # everything created before 40.0 is too old
    await store.durable()
    assert [m.seq for m in store.list_messages()] == [7]
    store.close()
    reopened = SqliteStore(path, retention=Retention(max_messages=3, max_age=60))
    assert [m.seq for m in reopened.list_messages()] == [7]
    reopened.save_message(message(8, at=101.0))
    reopened.save_message(message(9, at=170.0))  # 7 and 8 are now too old
    assert [m.seq for m in reopened.list_messages()] == [9]
    reopened.close()


def test_sqlite_checkpoints_off_the_writers_thread(tmp_path: Path) -> None:
    path = tmp_path / "otpsim.db"
    store = SqliteStore(path, checkpoint_every=0.05)
    assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    for n in range(500):
        store.save_otp(otp(n))  # outside a loop: each commits at once, into the WAL
    # Only a checkpoint moves pages into the database file itself.
    deadline = time.monotonic() + 10
    while path.stat().st_size < 200_000 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.stat().st_size >= 200_000
    store.close()
    assert not Path(f"{path}-wal").exists()  # the last close checkpoints and removes it
    reopened = SqliteStore(path)
    assert len(reopened.list_otps()) == 500
    reopened.close()


async def test_sqlite_a_failed_batch_rolls_back_alone_and_the_store_keeps_working(
    tmp_path: Path,
) -> None:
    path = tmp_path / "otpsim.db"
    store = SqliteStore(path)
    store.save_otp(otp(1))
    store.save_otp(otp(2, account="k\udcff"))  # not text: cannot be encoded as JSON
    with pytest.raises(StoreUnavailable, match="could not write"):
        await asyncio.wait_for(store.durable(), 5)  # generous: it must not hang
    assert store.list_otps() == []  # the whole batch rolled back, nothing half-written
    store.save_otp(otp(3))  # the next batch starts clean
    store.save_delivery(delivery("msg_1", "a", "pending"))
    await asyncio.wait_for(store.durable(), 5)
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT otp_id FROM otps").fetchall() == [("otp-3",)]
    store.close()


@pytest.mark.parametrize(
    ("fault", "cure"),
    [
        # A full disk: the file may not grow past the pages it has now.
        ("PRAGMA max_page_count = {pages}", "PRAGMA max_page_count = 1073741823"),
        # A read-only database (chmod does not stop root: the connection refuses writes).
        ("PRAGMA query_only = 1", "PRAGMA query_only = 0"),
    ],
    ids=["disk-full", "read-only"],
)
async def test_sqlite_write_failures_answer_server_error_and_recover(
    make_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, fault: str, cure: str
) -> None:
    store = SqliteStore(tmp_path / "otpsim.db")
    client = await make_client(Settings(db=str(tmp_path / "otpsim.db")), store=store)
    await create(client)
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(fault.format(pages=pages))
    template = "x" * 1500 + " {{pin}}"  # big rows, to fill the free room of the pages
    body = {"phoneNumber": FR, "template": template}
    statuses = []
    for _ in range(100):  # the first refusal comes once the room is used up (read-only: at once)
        resp = await client.post("/otp", json=body, headers=KEY)
        statuses.append(resp.status)
        if resp.status != 201:
            break
    # That one and every write after it fail the same way, in the provider's shape.
    refused = [resp] + [await client.post("/otp", json=body, headers=KEY) for _ in range(2)]
    for resp in refused:
        err = await expect_error(resp, 500, "server_error", 1015)
        assert "could not write" in err["message"]
    assert "a batch of writes failed and was rolled back" in caplog.text
    assert caplog.text.count("rolled back") == 1  # logged once per outage, not per request
    stored = len((await (await client.get("/_sim/otps")).json())["otps"])
    assert stored == statuses.count(201) + 1  # what was answered 201, nothing else
    store._db.execute(cure)
    otp_id = (await create(client, template=template))["otpId"]
    # Three refused requests' batches, and those of their journal entries (written behind).
    assert re.search(r"writing again, after \d+ failed batches", caplog.text)
    resp = await client.get(f"/_sim/otps/{otp_id}")
    assert resp.status == 200
    assert len((await (await client.get("/_sim/otps")).json())["otps"]) == stored + 1


def test_sqlite_one_store_per_file_the_second_is_refused_naming_the_first(
    tmp_path: Path,
) -> None:
    path = tmp_path / "otpsim.db"
    first = SqliteStore(path)
    first.save_otp(otp(1))
    for spelling in (path, tmp_path / "." / "otpsim.db"):  # the same file, however named
        with pytest.raises(OtpsimError) as refused:
            SqliteStore(spelling, lock_wait=0)
        assert str(path) in str(refused.value)
        assert f"pid {os.getpid()}" in str(refused.value)
        assert "\n" not in str(refused.value)
    first.close()
    again = SqliteStore(path, lock_wait=0)  # free once the first is closed
    assert again.get_otp("otp-1") is not None
    again.close()


def test_sqlite_one_store_per_file_even_through_a_hard_link_or_without_the_lock_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "otpsim.db"
    first = SqliteStore(path)
    first.save_otp(otp(1))
    link = tmp_path / "other-name.db"
    os.link(path, link)  # the same file (inode) under another name: no realpath joins them
    with pytest.raises(OtpsimError) as refused:
        SqliteStore(link, lock_wait=0)
    assert str(link) in str(refused.value)
    assert f"pid {os.getpid()}" in str(refused.value)  # found even without its .lock file
    for stale in tmp_path.glob("*.lock"):
        stale.unlink()  # someone tidies up while the server runs
    with pytest.raises(OtpsimError, match="already in use"):
        SqliteStore(path, lock_wait=0)
    first.close()
    again = SqliteStore(link, lock_wait=0)  # free once the first is closed
    assert again.get_otp("otp-1") is not None
    again.close()


SQLITE_WRITER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
db.execute("BEGIN IMMEDIATE")  # SQLite's own (POSIX) write lock on the file
print(db.execute("SELECT COUNT(*) FROM otps").fetchone()[0])
db.execute("ROLLBACK")
"""

FCNTL_HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a POSIX lock on the whole file
print("held", flush=True)
sys.stdin.read()
"""


def test_sqlite_the_store_s_lock_and_sqlite_s_own_locks_never_collide(tmp_path: Path) -> None:
    """The store's flock is on the database file, which SQLite locks too (POSIX fcntl
    locks): on Linux the two kinds are independent, or the lock would lock SQLite out."""
    path = tmp_path / "otpsim.db"
    store = SqliteStore(path)
    store.save_otp(otp(1))
    writer = subprocess.run(
        [sys.executable, "-c", SQLITE_WRITER, str(path)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert writer.returncode == 0, writer.stderr
    assert writer.stdout.strip() == "1"
    store.close()
    with subprocess.Popen(
        [sys.executable, "-c", FCNTL_HOLDER, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as holder:  # fmt: skip
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        lock = _FileLock(str(path), 0)  # taken beside the other process's POSIX lock
        lock.release()
        holder.communicate("", timeout=30)


# -- retention at the cap: O(1) per insert (issue 18) -----------------------------------------


def test_retained_map_evicts_oldest_first_and_keeps_a_reinserted_key() -> None:
    evicted: list[int] = []
    kept: RetainedMap[tuple[str, float]] = RetainedMap(
        Retention(max_messages=3, max_age=100), lambda v: v[1], lambda v: evicted.append(int(v[0]))
    )
    for n in range(1, 4):
        kept.put(str(n), (str(n), float(n)))
    assert kept.pop("1") == ("1", 1.0)
    kept.put("1", ("1", 4.0))  # back, now the newest: its old place in line is stale
    kept.put("5", ("5", 5.0))  # 4 entries > 3: the oldest live one (2) goes, not 1
    assert evicted == [2]
    assert [v[0] for v in kept.values()] == ["3", "1", "5"]
    kept.put("3", ("3", 6.0))  # an update keeps its place and evicts nothing
    assert evicted == [2]
    kept.put("6", ("6", 200.0))  # now 200: everything created before 100 is too old
    assert evicted == [2, 3, 1, 5]
    assert [v[0] for v in kept.newest_first()] == ["6"]


def test_retained_map_stays_bounded_under_removals() -> None:
    kept: RetainedMap[float] = RetainedMap(Retention(max_messages=10**9), float)
    for n in range(50_000):  # what a test suite does: create, then clear, forever
        kept.put(f"k{n}", float(n))
        if n % 3:
            kept.pop(f"k{n}")
    assert len(kept) == 16_667
    assert len(kept._order) <= 2 * len(kept) + 1025  # stale keys do not pile up
    assert list(kept.values())[:2] == [0.0, 3.0]


def test_sqlite_deletes_the_oldest_in_batches_by_an_indexed_range(tmp_path: Path) -> None:
    """At its cap, a table deletes its oldest rows a batch at a time (1 % of the cap),
    never by a full scan, and never keeps more than the cap."""
    store = SqliteStore(tmp_path / "otpsim.db", retention=Retention(max_messages=1000))
    try:
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)
        for n in range(1, 3001):
            store.save_message(message(n))
            store.save_otp(otp(n))
            if n % 500 == 0:
                assert len(store.list_messages()) <= 1000
                assert len(store.list_otps()) <= 1000
        store._db.set_trace_callback(None)
        deletes = [s for s in statements if s.startswith("DELETE")]
        # 2 tables x 2,000 evicted rows, 10 at a time: 400 statements, not 4,000.
        assert len(deletes) <= 2 * 2000 // 10 + 2
        for sql in set(deletes):
            plan = " ".join(str(row[-1]) for row in store._db.execute("EXPLAIN QUERY PLAN " + sql))
            assert "SCAN" not in plan.replace("SCAN CONSTANT", ""), (sql, plan)
        seqs = [m.seq for m in store.list_messages()]
        assert seqs == list(range(3000, 3000 - len(seqs), -1))  # the newest, in order
        assert 990 <= len(seqs) <= 1000
    finally:
        store.close()


# -- round 5: messages found by their OTP's insertion order (schema 5) ---------------------


def _version_4_file(path: Path, count: int = 6) -> None:
    """A database as otpsim wrote it at schema 4, with its statements: messages found
    by OTP through an index keyed by the random ``otp_id``. otp-2 has two messages;
    the last OTP's message outlived its OTP (retention took the OTP first)."""
    with sqlite3.connect(path) as db:
        for step in MIGRATIONS[:4]:
            db.executescript(step)
        db.execute("PRAGMA user_version = 4")
        db.execute("PRAGMA journal_mode = WAL")
        for n in range(1, count + 1):
            account = "a" if n < 5 else "b"
            one, sms = otp(n, account=account), message(n, account=account)
            if n < count:
                db.execute(
                    "INSERT OR IGNORE INTO otps (otp_id, account, phone, status, created_at, "
                    "record) VALUES (?, ?, ?, ?, ?, ?)",
                    (one.otp_id, account, one.request.phone_number, one.status.value, 0.0,
                     jsoncodec.dumps_text(one)),
                )  # fmt: skip
            db.execute(
                "INSERT INTO messages (message_id, seq, otp_id, account, phone, status,"
                " created_at, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (sms.message_id, sms.seq, sms.otp_id, account, sms.phone_number,
                 sms.status.value, 0.0, jsoncodec.dumps_text(sms)),
            )  # fmt: skip
        again = message(count + 1)
        again.otp_id = "otp-2"  # a second SMS for otp-2
        db.execute(
            "INSERT INTO messages (message_id, seq, otp_id, account, phone, status,"
            " created_at, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (again.message_id, again.seq, again.otp_id, "a", again.phone_number,
             again.status.value, 0.0, jsoncodec.dumps_text(again)),
        )  # fmt: skip
        db.execute(
            "INSERT INTO meta VALUES ('clock', ?)",
            (jsoncodec.dumps_text(ClockState(12.5, None)),),
        )
    db.close()  # (the last close checkpoints: the file alone holds it all, to be copied)


def _by_otp_agrees_with_the_full_listing(store: SqliteStore, otp_ids: list[str]) -> None:
    """Every query by OTP returns what the unfiltered listing (which no OTP index
    serves), filtered here, says it must: the same messages, newest first."""
    everything = store.list_messages()
    delivered = SmsStatus.DELIVERED
    for otp_id in otp_ids:
        mine = [m for m in everything if m.otp_id == otp_id]
        assert store.list_messages(otp_id=otp_id) == mine, otp_id
        assert store.list_messages(otp_id=otp_id, limit=1) == mine[:1], otp_id
        for account in ("a", "b"):
            theirs = [m for m in mine if m.account == account]
            assert store.list_messages(otp_id=otp_id, account=account) == theirs, otp_id
        latest = [m for m in mine if m.status is delivered][:1]
        assert store.list_messages(otp_id=otp_id, status=delivered, limit=1) == latest


def test_sqlite_opens_a_version_4_file_and_finds_every_message_by_its_otp(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v4.db"
    _version_4_file(path)
    ids = [f"otp-{n}" for n in range(0, 9)]
    store = SqliteStore(path)
    try:
        assert [m.seq for m in store.list_messages()] == [7, 6, 5, 4, 3, 2, 1]
        assert [m.seq for m in store.list_messages(otp_id="otp-2")] == [7, 2]
        assert [m.seq for m in store.list_messages(otp_id="otp-6")] == [6]  # its OTP is gone
        assert store.list_messages(otp_id="otp-0") == []
        assert [o.otp_id for o in store.list_otps()] == [f"otp-{n}" for n in range(5, 0, -1)]
        assert store.load_clock() == ClockState(12.5, None)
        _by_otp_agrees_with_the_full_listing(store, ids)
        store.save_otp(otp(8))
        store.save_message(message(8))
        delivered = message(2)
        delivered.deliver(5.0)
        store.save_message(delivered)  # an update of a migrated row: no second row
        assert [m.seq for m in store.list_messages(otp_id="otp-2")] == [7, 2]
        assert store.list_messages(otp_id="otp-2", status=SmsStatus.DELIVERED) == [delivered]
        _by_otp_agrees_with_the_full_listing(store, ids)
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        full = {  # indexes on the random otp_id over every message: none
            row[0]
            for row in db.execute(
                "SELECT i.name FROM pragma_index_list('messages') AS i, "
                "pragma_index_info(i.name) AS c WHERE c.name = 'otp_id' AND i.partial = 0"
            )
        }
        assert full == set()
    reopened = SqliteStore(path)
    try:
        _by_otp_agrees_with_the_full_listing(reopened, ids)
    finally:
        reopened.close()


@pytest.mark.parametrize("unlink_each_up_to", [64, 0])
@pytest.mark.parametrize("seed", range(6))
async def test_sqlite_finds_messages_by_otp_whatever_became_of_the_otp(
    tmp_path: Path, seed: int, unlink_each_up_to: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages are found by OTP through the OTP's own row: this checks every way the
    two can part. Random operations (an OTP with or without its messages, a message
    before its OTP or without one, several per OTP, status changes, the count and the
    age retention taking OTPs before their messages, a clock moved back and forth, an
    OTP id used again after retention took it, a clear of one account, batches that
    roll back, a reopen), then every query by OTP against the full listing. With
    ``unlink_each_up_to`` 0, links to deleted OTPs are cut by the range walk that a
    large purge takes, every time."""
    monkeypatch.setattr(SqliteStore, "UNLINK_EACH_UP_TO", unlink_each_up_to)
    draw = random.Random(seed)
    now = [1000.0]
    retention = Retention(max_messages=draw.choice([7, 40, 300]), max_age=50.0)
    retention.now = lambda: now[0]
    path = tmp_path / "otpsim.db"
    store = SqliteStore(path, retention=retention, checkpoint_every=3600)
    ids = [f"otp-{n}" for n in range(60)]
    seq = 0
    sent: list[Message] = []
    try:
        for step in range(900):
            roll = draw.random()
            otp_id = draw.choice(ids)
            account = draw.choice("ab")
            if roll < 0.35:
                one = otp(0, account=account, at=now[0])
                one.otp_id = otp_id
                store.save_otp(one)
            if roll < 0.75:
                seq += 1
                sms = message(seq, account=draw.choice([account, account, "b"]), at=now[0])
                sms.otp_id = otp_id
                store.save_message(sms)
                sent.append(sms)
            elif roll < 0.85 and sent:
                sms = draw.choice(sent[-30:])
                sms.deliver(now[0])
                store.save_message(sms)
            elif roll < 0.93:
                now[0] += draw.choice([-80.0, -5.0, 1.0, 5.0, 30.0, 60.0])
            elif roll < 0.95:
                store.clear(draw.choice("ab"))
            elif roll < 0.96:
                store.save_otp(otp(0, account="k\udcff"))  # cannot be written: the batch
                with pytest.raises(StoreUnavailable):  # rolls back, and only it
                    await store.durable()
            if step % 7 == 6:
                await store.durable()
            if step % 150 == 149:
                _by_otp_agrees_with_the_full_listing(store, ids)
        await store.durable()
        _by_otp_agrees_with_the_full_listing(store, ids)
        store.close()
        store = SqliteStore(path, retention=retention, checkpoint_every=3600)
        _by_otp_agrees_with_the_full_listing(store, ids)
        for n in range(50):  # and it goes on from there
            seq += 1
            sms = message(seq, at=now[0])
            sms.otp_id = ids[n % 5]
            store.save_otp(otp(n % 5))
            store.save_message(sms)
        _by_otp_agrees_with_the_full_listing(store, ids)
    finally:
        store.close()


def test_sqlite_a_query_by_otp_reads_no_table_at_its_cap(tmp_path: Path) -> None:
    """``/_sim/messages/latest?otpId=`` for an unknown or old OTP (a harness polls it)
    is served by indexes: a walk of the messages table took 258 ms at 100,000 rows, on
    the event loop. Counted in SQLite's virtual-machine steps, which a walk of the
    table's 5,000 rows multiplies by thousands, not in time."""
    retention = Retention(max_messages=5000)
    store = SqliteStore(tmp_path / "otpsim.db", retention=retention, checkpoint_every=3600)
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    try:
        for n in range(6000):  # past the cap: the first 1,000 are gone
            store.save_otp(otp(n))
            store.save_message(message(n))
        store._db.set_progress_handler(count, 10)
        for otp_id in ("otp-5", "otp-5999", "otp-3000", "nobody"):
            steps[0] = 0
            found = store.list_messages(otp_id=otp_id, status=SmsStatus.QUEUED, limit=1)
            assert [m.otp_id for m in found] == ([] if otp_id in ("otp-5", "nobody") else [otp_id])
            assert steps[0] < 50, (otp_id, steps[0] * 10)
            for narrower in ({"account": "a"}, {"phone_number": "+33612345678"}):
                steps[0] = 0  # (the account's or phone's index alone walks them all)
                store.list_messages(otp_id=otp_id, limit=1, **narrower)  # type: ignore[arg-type]
                assert steps[0] < 50, (otp_id, narrower, steps[0] * 10)
    finally:
        store._db.set_progress_handler(None, 0)
        store.close()


_MIGRATE_AND_DIE = """
import os, signal, sys
from otpsim.store.sqlite import SqliteStore

steps = [0]
def tick():
    steps[0] += 1
    if steps[0] == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
    return 0

original = SqliteStore._migrate
def migrate(self):
    self._db.set_progress_handler(tick, 100)
    original(self)
SqliteStore._migrate = migrate
SqliteStore(sys.argv[1]).close()
print(steps[0])
"""


def test_sqlite_a_kill_mid_migration_leaves_schema_4_or_a_complete_5(tmp_path: Path) -> None:
    """The 4 -> 5 migration is one transaction: killed (SIGKILL) at any point, the file
    is the schema-4 one, or the complete schema 5; either opens and serves identically."""
    src = tmp_path / "v4.db"
    _version_4_file(src, count=400)
    probe = tmp_path / "probe.db"
    probe.write_bytes(src.read_bytes())
    done = subprocess.run(
        [sys.executable, "-c", _MIGRATE_AND_DIE, str(probe), "0"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    total = int(done.stdout)  # progress ticks a whole migration takes
    assert total > 20
    expected: list[Message] | None = None
    for at in (1, total // 4, total // 2, total - 1):
        path = tmp_path / f"killed-{at}.db"
        path.write_bytes(src.read_bytes())
        killed = subprocess.run(
            [sys.executable, "-c", _MIGRATE_AND_DIE, str(path), str(at)],
            capture_output=True, timeout=60,
        )  # fmt: skip
        assert killed.returncode == -9, killed.stderr
        with sqlite3.connect(path) as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            columns = {r[1] for r in db.execute("PRAGMA table_info('messages')")}
            assert (version, "otp_seq" in columns) in ((4, False), (5, True)), at
            assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 401
            assert db.execute("SELECT COUNT(*) FROM otps").fetchone()[0] == 399
        store = SqliteStore(path)
        try:
            listing = store.list_messages()
            assert expected is None or listing == expected
            expected = listing
            _by_otp_agrees_with_the_full_listing(store, ["otp-2", "otp-400", "otp-7", "none"])
        finally:
            store.close()
