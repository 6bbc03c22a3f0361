"""The SQLite store (``--db PATH``): OTPs, messages, callback deliveries and the clock
survive a restart, and a crash.

WAL mode, with group commit: writes made within a couple of milliseconds share one
transaction, and a caller that must not answer before its data is on disk awaits
:meth:`SqliteStore.durable` (the provider API does, so a ``201`` is only answered for an
OTP that is on disk). OTPs and messages saved during a batch are written when it
commits (or before the next read), once each however often they were saved: a new OTP's
message is saved QUEUED then DELIVERED within the same request and costs one row write.
Outside an event loop every write commits at once.
``synchronous=NORMAL`` survives a crash of the process (even ``kill -9``);
``durability="full"`` (``--db-sync full``) also survives a power cut, at the price of an
fsync per commit.

Checkpoints (copying the WAL into the database file, with an fsync) run in a background
thread on its own connection, once a second: SQLite's automatic checkpoint runs inside
a commit, on the event loop, and stalled every request for tens of milliseconds.

One store per file: an exclusive ``flock`` on the database file itself (its inode, so
a hard link or a deleted ``PATH.lock`` cannot get round it) refuses a second server,
which would otherwise lose the first one's updates (``PATH.lock`` holds the owner's pid,
for the message). A batch
that fails (a full disk, a read-only file, an object that cannot be encoded) rolls back
alone: its waiters get :class:`StoreUnavailable`, the next batch starts clean.

Each table keeps the whole object as a JSON record plus the columns its queries need,
and indexes only what a query needs. At the retention cap every insert also deletes the
oldest rows, and each index page that touches costs a WAL frame and a checkpoint copy:
apart from the OTP id (every verify reads by it) the indexes are keyed in insertion or
time order, so inserts and deletes share the few pages at either end (see
:data:`MIGRATIONS` 4 and 5: a message is found by its OTP's insertion seq), and the
writer's page cache (:attr:`SqliteStore.CACHE_KIB`) holds that working set.
The schema is versioned (``PRAGMA user_version``); :data:`MIGRATIONS` brings an older
file up to date when it is opened.

Example::

    store = SqliteStore("otpsim.db")
    store.save_otp(otp)
    store.get_otp(otp.otp_id)
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import math
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from otpsim import jsoncodec
from otpsim.clock import ClockState
from otpsim.domain.journal import RequestQuery, RequestRecord
from otpsim.domain.message import Message, SmsStatus
from otpsim.domain.otp import Otp
from otpsim.errors import OtpsimError
from otpsim.store import DeliveryRecord, Journal, OutboxItem
from otpsim.store.retention import Retention, TableRetention

log = logging.getLogger(__name__)

SCHEMA_VERSION = 5

# MIGRATIONS[n] takes a database from version n to n + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE otps (
        otp_id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        phone TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX otps_account ON otps (account);
    CREATE INDEX otps_phone ON otps (phone);
    CREATE INDEX otps_pending ON otps (status) WHERE status = 'PENDING';
    CREATE INDEX otps_created ON otps (created_at);
    CREATE TABLE messages (
        message_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        otp_id TEXT NOT NULL,
        account TEXT NOT NULL,
        phone TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX messages_seq ON messages (seq);
    CREATE INDEX messages_phone ON messages (phone, seq);
    CREATE INDEX messages_otp ON messages (otp_id);
    CREATE INDEX messages_account ON messages (account, seq);
    CREATE INDEX messages_created ON messages (created_at);
    CREATE TABLE deliveries (
        delivery_id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        state TEXT NOT NULL,
        record TEXT NOT NULL
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: the callback outbox: each item of an open callback batch, written in the same
    # transaction as the status change it reports.
    """
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id TEXT NOT NULL,
        account TEXT NOT NULL,
        url TEXT NOT NULL,
        item TEXT NOT NULL
    );
    CREATE INDEX outbox_delivery ON outbox (delivery_id);
    """,
    # 3: the request journal (GET /_sim/requests): one row per provider-API request.
    """
    CREATE TABLE requests (
        seq INTEGER PRIMARY KEY,
        account TEXT,
        phone TEXT,
        otp_id TEXT,
        status INTEGER NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        created_at REAL NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX requests_created ON requests (created_at);
    """,
    # 4: messages without their ``message_id`` PRIMARY KEY, a uuid-keyed b-tree: each
    # message inserted, and each one deleted at the retention cap, rewrote a random page
    # of it (every page dirtied costs a WAL frame and a checkpoint copy). Nothing reads
    # a message by its id: a re-save finds its row by ``seq``, indexed in insertion
    # order. The ``otp_id`` index stays (random too, but without it a query for an
    # unknown or old OTP's SMS walked the whole table: ~250 ms at 100,000 rows).
    """
    CREATE TABLE messages_v4 (
        seq INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        otp_id TEXT NOT NULL,
        account TEXT NOT NULL,
        phone TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        record TEXT NOT NULL
    );
    INSERT INTO messages_v4 (seq, message_id, otp_id, account, phone, status, created_at,
        record)
        SELECT seq, message_id, otp_id, account, phone, status, created_at, record
        FROM messages ORDER BY rowid;
    DROP TABLE messages;
    ALTER TABLE messages_v4 RENAME TO messages;
    CREATE INDEX messages_seq ON messages (seq);
    CREATE INDEX messages_phone ON messages (phone, seq);
    CREATE INDEX messages_otp ON messages (otp_id);
    CREATE INDEX messages_account ON messages (account, seq);
    CREATE INDEX messages_created ON messages (created_at);
    """,
    # 5: messages found by their OTP's insertion order, not by the random ``otp_id``:
    # that index took a random page per message inserted and another per message
    # deleted at the retention cap. The OTPs get an explicit ``seq`` (their rowid,
    # which VACUUM may renumber unless it is an INTEGER PRIMARY KEY); a message's
    # ``otp_seq`` is the seq of the live OTP with its ``otp_id`` when it was written,
    # else NULL, and is set to NULL when that OTP is deleted (see _unlink_dead): so a
    # message of OTP X is linked to X's row or is in the small ``messages_orphan``
    # index (only messages whose OTP is unknown or gone), and a query by OTP id reads
    # both, through indexes.
    """
    CREATE TABLE otps_v5 (
        seq INTEGER PRIMARY KEY,
        otp_id TEXT NOT NULL UNIQUE,
        account TEXT NOT NULL,
        phone TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        record TEXT NOT NULL
    );
    INSERT INTO otps_v5 (seq, otp_id, account, phone, status, created_at, record)
        SELECT rowid, otp_id, account, phone, status, created_at, record
        FROM otps ORDER BY rowid;
    DROP TABLE otps;
    ALTER TABLE otps_v5 RENAME TO otps;
    CREATE INDEX otps_account ON otps (account);
    CREATE INDEX otps_phone ON otps (phone);
    CREATE INDEX otps_pending ON otps (status) WHERE status = 'PENDING';
    CREATE INDEX otps_created ON otps (created_at);
    ALTER TABLE messages ADD COLUMN otp_seq INTEGER;
    UPDATE messages SET otp_seq = (SELECT seq FROM otps WHERE otps.otp_id = messages.otp_id);
    DROP INDEX messages_otp;
    CREATE INDEX messages_otp_seq ON messages (otp_seq, seq) WHERE otp_seq IS NOT NULL;
    CREATE INDEX messages_orphan ON messages (otp_id, seq) WHERE otp_seq IS NULL;
    """,
]


class StoreUnavailable(Exception):
    """A write could not be made durable (a full disk, a read-only file, an object that
    cannot be encoded): its batch was rolled back. The store keeps working."""


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _dumps(data: Any) -> str:
    return jsoncodec.dumps_text(data)


class SqliteStore:
    CACHE_KIB = 16_384  # the writer's page cache (allocated as used)
    # Links to OTPs deleted in one flush are cut one probe each up to this many; beyond,
    # by one walk of the messages linked into their range (``_unlink_dead``).
    UNLINK_EACH_UP_TO = 64

    def __init__(
        self,
        path: str | Path,
        *,
        retention: Retention | None = None,
        durability: str = "normal",
        checkpoint_every: float = 1.0,
        lock_wait: float = 2.0,
    ) -> None:
        self.path = str(path)
        self.retention = retention or Retention()
        # One store per file: two servers on one file would lose each other's updates.
        self._lock = _FileLock(self.path, lock_wait)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
            self._db.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's job
            # The working set at the retention cap (the OTP id index, the tables' and
            # indexes' newest and oldest pages) outgrows SQLite's default 2 MB cache:
            # pages were read back from the file and dirty ones spilled mid-batch.
            self._db.execute(f"PRAGMA cache_size=-{self.CACHE_KIB}")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._lock.release()
            raise OtpsimError(f"{self.path}: cannot use as a database: {exc}") from None
        except BaseException:
            self._lock.release()
            raise
        self._checkpointer = _Checkpointer(self.path, checkpoint_every)
        self.journal: Journal | None = self  # deliveries, outbox and clock survive too

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise OtpsimError(
                f"{self.path}: made by a newer otpsim (schema {version}; this one knows "
                f"{SCHEMA_VERSION})"
            )
        for step in range(version, SCHEMA_VERSION):
            # One transaction per step: the schema and its version change together.
            self._db.executescript(
                f"BEGIN; {MIGRATIONS[step]}; PRAGMA user_version = {step + 1}; COMMIT;"
            )
        # Row counts and oldest times in memory: retention without scans (see retention).
        self._kept = {
            "otps": TableRetention(
                self._db, "otps", "seq", self.retention, on_delete=self._otps_deleted
            ),
            "messages": TableRetention(self._db, "messages", "seq", self.retention),
        }
        self._batch: asyncio.Future[None] | None = None
        self._batch_error: BaseException | None = None  # the open batch's first failure
        self._failed_batches = 0  # in a row: logged once per outage
        # Saved but not yet written (see the module's docstring), by id, in save order.
        self._pending_otps: dict[str, Otp] = {}
        self._pending_messages: dict[str, Message] = {}
        self._pending_requests: list[RequestRecord] = []
        # OTPs deleted by retention during a flush, whose messages' links are cut at its
        # end (by then, at the cap, those messages were deleted too: nothing to cut).
        self._dead_upto: int | None = None  # every OTP seq up to this one
        self._dead: list[int] = []
        self._journal_failing = False  # journal writes failed (logged once per outage)
        self._batch_real = False
        self._journal_timer: asyncio.TimerHandle | None = None
        row = self._db.execute("SELECT MAX(seq) FROM messages").fetchone()
        # The highest message seq ever written (a rolled-back batch may leave it too high:
        # then a new message only costs a lookup first, see _write_message).
        self._message_seq_max: float = -math.inf if row[0] is None else int(row[0])
        row = self._db.execute("SELECT COUNT(*), MAX(seq) FROM requests").fetchone()
        self._request_count, self._last_request_seq = int(row[0]), int(row[1] or 0)
        self._oldest_request = self._min_created("requests")

    def _recount(self) -> None:
        for table in self._kept.values():
            table.recount()

    COMMIT_DELAY = 0.002  # seconds a batch stays open for more writes

    def _begin(self) -> None:
        """Open a batch (a transaction committed COMMIT_DELAY later) inside an event loop;
        outside one, nothing: each write then commits on its own."""
        if self._batch is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._db.in_transaction:  # never expected: a batch always ends in COMMIT or ROLLBACK
            log.error("SQLite store %s: a transaction was left open; rolling it back", self.path)
            self._db.execute("ROLLBACK")
        self._db.execute("BEGIN")
        self._batch = loop.create_future()
        # A batch nobody awaits (a delivery, an expiry) must not log "never retrieved".
        self._batch.add_done_callback(_retrieve)
        self._batch_error = None
        self._batch_real = False  # anything but journal entries written in it
        loop.call_later(self.COMMIT_DELAY, self._commit)

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """Run a write inside the open batch (opening one), after what is pending."""
        self._flush()
        self._begin()
        self._batch_real = True
        if self._batch is not None and self._batch_error is not None:
            raise StoreUnavailable(self._failure(self._batch_error))
        try:
            return self._db.execute(sql, args)
        except Exception as exc:
            self._doom(exc)
            raise

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        self._execute(sql, args)

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """A query that sees every save so far, written or pending."""
        self._flush()
        return self._db.execute(sql, args)

    def _flush(self) -> None:
        """Write the pending OTPs and messages (inside the open batch, if any).

        A write that fails (an object that cannot be encoded, a full disk) dooms the open
        batch, which rolls back when it ends; outside a batch it is raised at once.
        """
        if not (self._pending_otps or self._pending_messages or self._pending_requests):
            return
        otps, self._pending_otps = self._pending_otps, {}
        messages, self._pending_messages = self._pending_messages, {}
        requests, self._pending_requests = self._pending_requests, []
        # Outside a batch, OTPs and messages get one transaction of their own: an OTP
        # deleted by retention and the links to it cut (at the end) are written together,
        # or not at all. Journal entries alone (a read that must see them) need none:
        # one that cannot be written is dropped (``_write_requests``), and the read
        # answers, whatever the disk says at a COMMIT.
        own = not self._db.in_transaction and bool(otps or messages)
        try:
            if own:
                self._db.execute("BEGIN")
            seqs: dict[str, int] = {}  # the seqs of the OTPs inserted here, by id
            for otp in otps.values():
                self._write_otp(otp, seqs)
            for message in messages.values():
                self._write_message(message, seqs)
            self._unlink_dead()
            if requests:
                self._write_requests(requests)
            if own:
                self._db.execute("COMMIT")
        except Exception as exc:
            self._dead_upto = None
            self._dead.clear()
            if own:
                self._roll_back()
            if self._batch is None:
                raise
            self._doom(exc)

    def _otps_deleted(self, upto: int | None, seqs: list[int]) -> None:
        """Retention deleted OTPs (every seq up to ``upto``, or these): their
        messages' links are cut at the end of the flush (:meth:`_unlink_dead`)."""
        if upto is not None and (self._dead_upto is None or upto > self._dead_upto):
            self._dead_upto = upto
        self._dead.extend(seqs)

    def _unlink_dead(self) -> None:
        """Messages whose OTP was deleted go to the orphans' index (by their otp_id).
        At the cap the oldest OTPs and messages are deleted in the same flushes, so
        this is an index probe that finds nothing."""
        if self._dead_upto is not None:
            sql = "UPDATE messages SET otp_seq = NULL WHERE otp_seq <= ?"
            self._db.execute(sql, (self._dead_upto,))
            self._dead_upto = None
        if self._dead:
            dead, self._dead = self._dead, []
            if len(dead) > self.UNLINK_EACH_UP_TO:
                # Many at once (an age purge after a clock jump): the messages linked into
                # their range, each checked against the OTPs still there, rather than a
                # probe per deleted OTP (most find nothing: their messages went with them).
                low, high = min(dead), max(dead)
                self._db.execute(
                    "UPDATE messages SET otp_seq = NULL WHERE otp_seq BETWEEN ? AND ? "
                    "AND otp_seq NOT IN (SELECT seq FROM otps WHERE seq BETWEEN ? AND ?)",
                    (low, high, low, high),
                )
                return
            sql = "UPDATE messages SET otp_seq = NULL WHERE otp_seq = ?"
            self._db.executemany(sql, [(seq,) for seq in dead])

    def _doom(self, exc: BaseException) -> None:
        """A write of the open batch failed: it will roll back, whatever comes after."""
        if self._batch is not None and self._batch_error is None:
            self._batch_error = exc

    def _failure(self, exc: BaseException) -> str:
        return f"{self.path}: could not write ({type(exc).__name__}: {exc})"

    def _commit(self) -> None:
        """End the open batch: COMMIT, or on any failure ROLLBACK, fail this batch's
        waiters (only them) and keep going: the next batch starts clean."""
        batch, self._batch = self._batch, None
        if batch is None:
            return
        error = self._batch_error
        if error is None:
            try:
                self._flush()  # the batch is no longer open: a failure is raised here
                self._db.execute("COMMIT")
            except Exception as exc:
                error = exc
        self._batch_error = None
        if error is None:
            # (A batch of journal entries only is no sign of recovery: they may be dropped.)
            if self._failed_batches and self._batch_real:
                log.warning(
                    "SQLite store %s: writing again, after %d failed batches",
                    self.path, self._failed_batches,
                )  # fmt: skip
                self._failed_batches = 0
            if not batch.done():
                batch.set_result(None)
            return
        self._roll_back()
        if not self._failed_batches:
            # Once per outage (a full disk fails every batch): the first, then recovery.
            log.error(
                "SQLite store %s: a batch of writes failed and was rolled back (%s: %s); "
                "requests in it are answered 500 until writing works again",
                self.path, type(error).__name__, error, exc_info=error,
            )  # fmt: skip
        self._failed_batches += 1
        if not batch.done():
            batch.set_exception(StoreUnavailable(self._failure(error)))

    def _roll_back(self) -> None:
        self._dead_upto = None
        self._dead.clear()
        self._pending_otps.clear()
        self._pending_messages.clear()
        self._pending_requests.clear()
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            # Counts kept in memory followed the writes that were just undone.
            self._recount()
            row = self._db.execute("SELECT COUNT(*) FROM requests").fetchone()
            self._request_count = int(row[0])
            self._oldest_request = self._min_created("requests")
        except sqlite3.Error as exc:
            log.error("SQLite store %s: rollback failed: %s", self.path, exc)

    async def durable(self) -> None:
        """Return once everything written so far is committed; :class:`StoreUnavailable`
        when the batch it was written in failed (and was rolled back)."""
        if self._batch is not None:
            await asyncio.shield(self._batch)

    def close(self) -> None:
        if self._journal_timer is not None:
            self._journal_timer.cancel()
            self._journal_timer = None
        self._checkpointer.stop()
        try:
            self._flush()
        except Exception as exc:
            log.error("SQLite store %s: %s", self.path, self._failure(exc))
        self._commit()
        self._db.close()  # the last connection to close checkpoints what is left
        self._lock.release()

    # -- OTPs ------------------------------------------------------------------------

    def save_otp(self, otp: Otp) -> None:
        self._pending_otps[otp.otp_id] = otp
        self._begin()
        self._batch_real = True
        if self._batch is None:
            self._flush()

    def _write_otp(self, otp: Otp, seqs: dict[str, int]) -> None:
        record = _dumps(otp)
        stored = self.retention.stamp(otp.created_at)  # its age counts on the shared clock
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO otps (otp_id, account, phone, status, created_at, record) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (otp.otp_id, otp.account, otp.request.phone_number, otp.status.value,
             stored, record),
        )  # fmt: skip
        if cursor.rowcount:
            seqs[otp.otp_id] = cursor.lastrowid  # type: ignore[assignment]
            self._inserted("otps", stored)
        else:
            self._db.execute(
                "UPDATE otps SET status = ?, record = ? WHERE otp_id = ?",
                (otp.status.value, record, otp.otp_id),
            )

    def get_otp(self, otp_id: str) -> Otp | None:
        row = self._read("SELECT record FROM otps WHERE otp_id = ?", (otp_id,)).fetchone()
        return None if row is None else Otp.from_record(jsoncodec.loads(row[0]))

    def list_otps(
        self,
        *,
        account: str | None = None,
        phone_number: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[Otp]:
        where, args = _filters(account=account, phone=phone_number, status=status)
        sql = f"SELECT record FROM otps{where} ORDER BY seq DESC" + _limit(limit)
        return [Otp.from_record(jsoncodec.loads(r[0])) for r in self._read(sql, args)]

    def pending_otps(self) -> list[Otp]:
        rows = self._read("SELECT record FROM otps WHERE status = 'PENDING'")
        return [Otp.from_record(jsoncodec.loads(r[0])) for r in rows]

    def count_otps_by_status(self) -> dict[str, int]:
        rows = self._read("SELECT status, COUNT(*) FROM otps GROUP BY status")
        return {status: count for status, count in rows}

    def _inserted(self, table: str, created_at: float) -> None:
        """Count a new row and apply retention (see :class:`TableRetention`: no query
        while within limits; the oldest rows deleted by an indexed range, in batches)."""
        self._kept[table].inserted(created_at)

    # -- messages --------------------------------------------------------------------

    def save_message(self, message: Message) -> None:
        self._pending_messages[message.message_id] = message
        self._begin()
        self._batch_real = True
        if self._batch is None:
            self._flush()

    def _write_message(self, message: Message, seqs: dict[str, int]) -> None:
        record = _dumps(message)
        seq = message.seq
        # A message is new when its seq is past every seq written (the engine numbers
        # them in order): one INSERT. Otherwise its row, if any, is found by seq (indexed
        # in insertion order, unlike the random message id: see MIGRATIONS[3]).
        if (
            seq <= self._message_seq_max
            and self._db.execute(
                "UPDATE messages SET status = ?, record = ? WHERE seq = ? AND message_id = ?",
                (message.status.value, record, seq, message.message_id),
            ).rowcount
        ):
            return
        stored = self.retention.stamp(message.created_at)  # its age counts on the shared clock
        # Linked to its OTP's row (the seq of an OTP inserted in this flush is known),
        # else an orphan (see MIGRATIONS[4]).
        otp_seq = seqs.get(message.otp_id)
        if otp_seq is None:
            sql = "SELECT seq FROM otps WHERE otp_id = ?"
            row = self._db.execute(sql, (message.otp_id,)).fetchone()
            otp_seq = None if row is None else row[0]
        self._db.execute(
            "INSERT INTO messages (message_id, seq, otp_id, account, phone, status,"
            " created_at, record, otp_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (message.message_id, seq, message.otp_id, message.account,
             message.phone_number, message.status.value, stored, record, otp_seq),
        )  # fmt: skip
        if seq > self._message_seq_max:
            self._message_seq_max = seq
        self._inserted("messages", stored)

    def list_messages(
        self,
        *,
        account: str | None = None,
        phone_number: str | None = None,
        otp_id: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        if otp_id is not None:
            return self._messages_of(otp_id, account, phone_number, status, limit)
        where, args = _filters(account=account, phone=phone_number, status=status)
        sql = f"SELECT record FROM messages{where} ORDER BY seq DESC" + _limit(limit)
        return [Message.from_record(jsoncodec.loads(r[0])) for r in self._read(sql, args)]

    def _messages_of(
        self,
        otp_id: str,
        account: str | None,
        phone_number: str | None,
        status: str | None,
        limit: int | None,
    ) -> list[Message]:
        """An OTP's messages: those linked to its row, and its orphans (see
        MIGRATIONS[4]), each through its own index, in one statement. The indexes are
        named: the planner preferred the account's or phone's index for the order, and
        walked all of their messages (~340 ms at 100,000 rows, on the event loop)."""
        where, args = _filters(account=account, phone=phone_number, status=status)
        narrower = where.replace(" WHERE ", " AND ", 1)
        sql = (
            "SELECT seq, record FROM messages INDEXED BY messages_otp_seq "
            "WHERE otp_seq = (SELECT seq FROM otps WHERE otp_id = ?) "
            f"AND otp_id = ?{narrower} UNION ALL "
            "SELECT seq, record FROM messages INDEXED BY messages_orphan "
            f"WHERE otp_seq IS NULL AND otp_id = ?{narrower} ORDER BY seq DESC" + _limit(limit)
        )
        rows = self._read(sql, (otp_id, otp_id, *args, otp_id, *args))
        return [Message.from_record(jsoncodec.loads(r[1])) for r in rows]

    def queued_messages(self) -> list[Message]:
        rows = self._read(
            "SELECT record FROM messages WHERE status = ? ORDER BY seq", (SmsStatus.QUEUED.value,)
        )
        return [Message.from_record(jsoncodec.loads(r[0])) for r in rows]

    def count_messages_by_status(self) -> dict[str, int]:
        rows = self._read("SELECT status, COUNT(*) FROM messages GROUP BY status")
        return {status: count for status, count in rows}

    def clear_messages(self, account: str | None = None) -> None:
        where, args = _filters(account=account)
        removed = self._execute(f"DELETE FROM messages{where}", args).rowcount
        self._kept["messages"].removed(removed)

    def clear(self, account: str | None = None) -> None:
        where, args = _filters(account=account)
        self.clear_messages(account)
        if account is not None:  # (without one, no message is left to unlink)
            self._write(
                "UPDATE messages SET otp_seq = NULL "
                "WHERE otp_seq IN (SELECT seq FROM otps WHERE account = ?)",
                (account,),
            )
        removed = self._execute(f"DELETE FROM otps{where}", args).rowcount
        self._kept["otps"].removed(removed)
        self._write(f"DELETE FROM deliveries{where}", args)
        self._write(f"DELETE FROM outbox{where}", args)
        self.clear_requests(account)

    # -- the request journal ---------------------------------------------------------

    JOURNAL_DELAY = 0.05  # seconds a journal entry may wait for a batch to ride in

    def save_request(self, record: RequestRecord) -> None:
        """Written behind: with the next batch (whatever opens it), or within
        JOURNAL_DELAY by a batch of its own; at once outside an event loop. Reads see it
        at once (they write what is pending first). An entry costs no commit of its own
        while other writes are going on."""
        self._pending_requests.append(record)
        self._last_request_seq = max(self._last_request_seq, record.seq)
        if self._batch is not None or self._journal_timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush()
            return
        self._journal_timer = loop.call_later(self.JOURNAL_DELAY, self._journal_due)

    def _journal_due(self) -> None:
        self._journal_timer = None
        if self._pending_requests:
            self._begin()  # its commit writes them (COMMIT_DELAY later)

    def _write_requests(self, records: list[RequestRecord]) -> None:
        """Write journal entries in a savepoint of their own: one that cannot be written
        is dropped (logged once per outage) and never fails the batch it rides in, nor the
        answers of the requests in it."""
        savepoint = self._db.in_transaction
        try:
            if savepoint:
                self._db.execute("SAVEPOINT journal")
            self._insert_requests(records)
            if savepoint:
                self._db.execute("RELEASE journal")
        except Exception as exc:
            with contextlib.suppress(sqlite3.Error):
                if savepoint:
                    self._db.execute("ROLLBACK TO journal")
                    self._db.execute("RELEASE journal")
                row = self._db.execute("SELECT COUNT(*) FROM requests").fetchone()
                self._request_count = int(row[0])
                self._oldest_request = self._min_created("requests")
            if not self._journal_failing:
                log.warning(
                    "SQLite store %s: %d request journal entries dropped (%s: %s)",
                    self.path, len(records), type(exc).__name__, exc,
                )  # fmt: skip
            self._journal_failing = True
            return
        self._journal_failing = False

    def _insert_requests(self, records: list[RequestRecord]) -> None:
        """Insert entries, then apply retention once: too old, then too many."""
        self._db.executemany(
            "INSERT OR REPLACE INTO requests (seq, account, phone, otp_id, status, method, "
            "path, created_at, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (r.seq, r.account, r.phone_number, r.otp_id, r.status, r.method, r.path, r.at,
                 _dumps(r.to_record()))
                for r in records
            ],
        )  # fmt: skip
        self._request_count += len(records)
        self._oldest_request = min(self._oldest_request, min(r.at for r in records))
        cutoff = self.retention.cutoff(records[-1].at)
        removed = 0
        if self._oldest_request < cutoff:  # (kept in memory: no DELETE while within limits)
            sql = "DELETE FROM requests WHERE created_at < ?"
            removed = self._db.execute(sql, (cutoff,)).rowcount
        excess = self._request_count - removed - self.retention.max_requests
        if excess > 0:
            removed += self._db.execute(
                "DELETE FROM requests WHERE seq IN (SELECT seq FROM requests ORDER BY seq LIMIT ?)",
                (excess,),
            ).rowcount
        self._request_count -= removed
        if removed:
            self._oldest_request = self._min_created("requests")

    def _min_created(self, table: str) -> float:
        row = self._db.execute(f"SELECT MIN(created_at) FROM {table}").fetchone()
        return math.inf if row[0] is None else float(row[0])

    def list_requests(self, query: RequestQuery, limit: int | None = None) -> list[RequestRecord]:
        parts: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("account", query.account), ("phone", query.phone_number),
            ("otp_id", query.otp_id), ("method", query.method),
        ):  # fmt: skip
            if value is not None:
                parts.append(f"{column} = ?")
                args.append(value)
        if query.status is not None:
            parts.append("status BETWEEN ? AND ?")
            args.extend(query.status)
        if query.path is not None:
            if query.path.endswith("*"):
                prefix = query.path[:-1]
                parts.append("substr(path, 1, ?) = ?")
                args.extend((len(prefix), prefix))
            else:
                parts.append("path = ?")
                args.append(query.path)
        if query.after_seq is not None:
            parts.append("seq > ?")
            args.append(query.after_seq)
        if query.since_time is not None:
            parts.append("created_at >= ?")
            args.append(query.since_time)
        where = " WHERE " + " AND ".join(parts) if parts else ""
        sql = f"SELECT record FROM requests{where} ORDER BY seq DESC" + _limit(limit)
        rows = self._read(sql, tuple(args))
        return [RequestRecord.from_record(jsoncodec.loads(r[0])) for r in rows]

    def clear_requests(self, account: str | None = None) -> None:
        where, args = _filters(account=account)
        self._request_count -= self._execute(f"DELETE FROM requests{where}", args).rowcount
        self._oldest_request = self._min_created("requests")

    def last_request_seq(self) -> int:
        return self._last_request_seq

    # -- callback deliveries and the clock (records only the dispatcher reads) -----------

    def save_delivery(self, record: DeliveryRecord) -> None:
        self._write(
            "INSERT INTO deliveries (delivery_id, account, state, record) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (delivery_id) DO UPDATE SET state = excluded.state, "
            "record = excluded.record",
            (record.delivery_id, record.account, record.state, _dumps(record)),
        )

    def delete_delivery(self, delivery_id: str) -> None:
        self._write("DELETE FROM deliveries WHERE delivery_id = ?", (delivery_id,))

    def load_deliveries(self) -> list[DeliveryRecord]:
        rows = self._read("SELECT record FROM deliveries ORDER BY rowid")
        return [DeliveryRecord.from_json(jsoncodec.loads(r[0])) for r in rows]

    def add_outbox_item(self, item: OutboxItem) -> None:
        self._write(
            "INSERT INTO outbox (delivery_id, account, url, item) VALUES (?, ?, ?, ?)",
            (item.delivery_id, item.account, item.url, _dumps(item.item)),
        )

    def delete_outbox(self, delivery_id: str) -> None:
        self._write("DELETE FROM outbox WHERE delivery_id = ?", (delivery_id,))

    def load_outbox(self) -> list[OutboxItem]:
        rows = self._read("SELECT delivery_id, account, url, item FROM outbox ORDER BY seq")
        return [OutboxItem(d, a, u, jsoncodec.loads(i)) for d, a, u, i in rows]

    def save_clock(self, state: ClockState) -> None:
        self._write(
            "INSERT INTO meta (key, value) VALUES ('clock', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (_dumps(state),),
        )

    def load_clock(self) -> ClockState | None:
        row = self._read("SELECT value FROM meta WHERE key = 'clock'").fetchone()
        return None if row is None else ClockState.from_json(jsoncodec.loads(row[0]))


class _FileLock:
    """An exclusive ``flock`` on the database file itself: on its inode, so it holds
    however the file is reached (another spelling, a symlink, a hard link), and no other
    file can be deleted to lift it. The kernel releases it when the process ends, even by
    ``kill -9``. On Linux ``flock`` locks are independent of the POSIX (``fcntl``) locks
    SQLite takes on the same file (``tests/store`` checks it both ways); not on NFS,
    where ``flock`` is emulated with them. The owner's pid goes to ``PATH.lock``, for the
    refusal's message only.

    A second owner waits up to ``wait`` seconds (a server that is stopping), then
    raises :class:`OtpsimError` naming the file and the process holding it.

    The descriptor stays open until :meth:`release`, after SQLite has closed the file:
    closing any descriptor of a file drops the POSIX locks the process holds on it.
    """

    def __init__(self, db_path: str, wait: float) -> None:
        self.db_path = db_path
        self.path = os.path.realpath(db_path) + ".lock"  # the pid, for the message
        try:
            fd = os.open(db_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except PermissionError:  # a read-only file can still be locked (and read)
            fd = self._open_read_only(db_path)
        except OSError as exc:
            raise OtpsimError(f"{db_path}: cannot open: {exc.strerror or exc}") from None
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    owner = _flock_owner(fd) or _read_pid(self.path)
                    os.close(fd)
                    raise OtpsimError(
                        f"{db_path}: already in use by another otpsim "
                        f"({f'pid {owner}' if owner else 'pid unknown'}); "
                        "one server per --db file"
                    ) from None
                time.sleep(0.05)
        self._fd: int | None = fd
        with contextlib.suppress(OSError):
            pid_file = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(pid_file, f"{os.getpid()}\n".encode())
            finally:
                os.close(pid_file)

    @staticmethod
    def _open_read_only(db_path: str) -> int:
        try:
            return os.open(db_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise OtpsimError(f"{db_path}: cannot open: {exc.strerror or exc}") from None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # while still holding the lock: the next owner writes anew
        os.close(fd)


def _flock_owner(fd: int) -> int | None:
    """The pid holding a ``flock`` on the file of ``fd``, from ``/proc/locks`` (Linux)."""
    info = os.fstat(fd)
    inode = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == inode:
                    return int(fields[4]) if fields[4].isdigit() else None
    except OSError:
        pass
    return None


def _read_pid(path: str) -> int | None:
    try:
        with open(path, "rb") as file:
            text = file.read(32).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


class _Checkpointer:
    """A daemon thread that checkpoints the WAL every ``every`` seconds (PASSIVE: it
    never waits for, nor blocks, the writer). sqlite3 releases the GIL while it works."""

    def __init__(self, path: str, every: float = 1.0) -> None:
        self._path = path
        self._every = every
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None)
        try:
            while not self._stopped.wait(self._every):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # e.g. the disk is full: try again later
                    log.warning("WAL checkpoint of %s failed: %s", self._path, exc)
        finally:
            db.close()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


def _filters(**given: str | None) -> tuple[str, tuple[str, ...]]:
    parts, args = [], []
    for column, value in given.items():
        if value is not None:
            parts.append(f"{column} = ?")
            args.append(value)
    return (" WHERE " + " AND ".join(parts) if parts else ""), tuple(args)


def _limit(limit: int | None) -> str:
    return "" if limit is None else f" LIMIT {int(limit)}"
