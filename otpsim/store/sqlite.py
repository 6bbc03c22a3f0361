"""The SQLite store (``--db PATH``): OTPs, messages, callback deliveries and the clock
survive a restart, and a crash.

WAL mode, with group commit: writes made within a couple of milliseconds share one
transaction, and a caller that must not answer before its data is on disk awaits
:meth:`SqliteStore.durable` (the provider API does, so a ``201`` is only answered for an
OTP that is on disk). Outside an event loop every write commits at once.
``synchronous=NORMAL`` survives a crash of the process (even ``kill -9``);
``durability="full"`` (``--db-sync full``) also survives a power cut, at the price of an
fsync per commit.

Each table keeps the whole object as a JSON record plus the columns its queries need.
The schema is versioned (``PRAGMA user_version``); :data:`MIGRATIONS` brings an older
file up to date when it is opened.

Example::

    store = SqliteStore("otpsim.db")
    store.save_otp(otp)
    store.get_otp(otp.otp_id)
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from otpsim import jsoncodec
from otpsim.domain.message import Delivery, Message
from otpsim.domain.otp import Otp
from otpsim.errors import OtpsimError
from otpsim.store.retention import Retention

SCHEMA_VERSION = 1

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
]


def _dumps(data: Any) -> str:
    return jsoncodec.dumps_text(data)


class SqliteStore:
    def __init__(
        self,
        path: str | Path,
        *,
        retention: Retention | None = None,
        durability: str = "normal",
    ) -> None:
        self.path = str(path)
        self.retention = retention or Retention()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise OtpsimError(f"{self.path}: cannot use as a database: {exc}") from None

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
        self._counts = {
            table: int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            for table in ("otps", "messages")
        }
        self._batch: asyncio.Future[None] | None = None

    COMMIT_DELAY = 0.002  # seconds a batch stays open for more writes

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """Run a write inside the open batch (opening one), or commit it at once."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None and self._batch is None:
            return self._db.execute(sql, args)  # autocommit
        if self._batch is None and loop is not None:
            self._db.execute("BEGIN")
            self._batch = loop.create_future()
            loop.call_later(self.COMMIT_DELAY, self._commit)
        return self._db.execute(sql, args)

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        self._execute(sql, args)

    def _commit(self) -> None:
        batch, self._batch = self._batch, None
        if batch is None:
            return
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if not batch.done():
                batch.set_exception(exc)
            raise
        if not batch.done():
            batch.set_result(None)

    async def durable(self) -> None:
        """Return once everything written so far is committed."""
        if self._batch is not None:
            await asyncio.shield(self._batch)

    def close(self) -> None:
        self._commit()
        self._db.close()

    # -- OTPs ------------------------------------------------------------------------

    def save_otp(self, otp: Otp) -> None:
        record = _dumps(otp.to_record())
        inserted = self._execute(
            "INSERT OR IGNORE INTO otps (otp_id, account, phone, status, created_at, record) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (otp.otp_id, otp.account, otp.request.phone_number, otp.status.value,
             otp.created_at, record),
        ).rowcount  # fmt: skip
        if inserted:
            self._counts["otps"] += 1
            self._prune("otps", "rowid", otp.created_at)
        else:
            self._write(
                "UPDATE otps SET status = ?, record = ? WHERE otp_id = ?",
                (otp.status.value, record, otp.otp_id),
            )

    def get_otp(self, otp_id: str) -> Otp | None:
        row = self._db.execute("SELECT record FROM otps WHERE otp_id = ?", (otp_id,)).fetchone()
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
        sql = f"SELECT record FROM otps{where} ORDER BY rowid DESC" + _limit(limit)
        return [Otp.from_record(jsoncodec.loads(r[0])) for r in self._db.execute(sql, args)]

    def pending_otps(self) -> list[Otp]:
        rows = self._db.execute("SELECT record FROM otps WHERE status = 'PENDING'")
        return [Otp.from_record(jsoncodec.loads(r[0])) for r in rows]

    def count_otps_by_status(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) FROM otps GROUP BY status")
        return {status: count for status, count in rows}

    def _prune(self, table: str, order: str, now: float) -> None:
        """Retention at insert time: too old, then too many, oldest first."""
        cursor = self._execute(
            f"DELETE FROM {table} WHERE created_at < ?", (self.retention.cutoff(now),)
        )
        self._counts[table] -= cursor.rowcount
        excess = self._counts[table] - self.retention.max_messages
        if excess > 0:
            cursor = self._execute(
                f"DELETE FROM {table} WHERE {order} IN "
                f"(SELECT {order} FROM {table} ORDER BY {order} LIMIT ?)",
                (excess,),
            )
            self._counts[table] -= cursor.rowcount

    # -- messages --------------------------------------------------------------------

    def save_message(self, message: Message) -> None:
        record = _dumps(message.to_record())
        inserted = self._execute(
            "INSERT OR IGNORE INTO messages (message_id, seq, otp_id, account, phone, status,"
            " created_at, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (message.message_id, message.seq, message.otp_id, message.account,
             message.phone_number, message.status.value, message.created_at, record),
        ).rowcount  # fmt: skip
        if inserted:
            self._counts["messages"] += 1
            self._prune("messages", "seq", message.created_at)
        else:
            self._write(
                "UPDATE messages SET status = ?, record = ? WHERE message_id = ?",
                (message.status.value, record, message.message_id),
            )

    def list_messages(
        self,
        *,
        account: str | None = None,
        phone_number: str | None = None,
        otp_id: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        where, args = _filters(account=account, phone=phone_number, otp_id=otp_id, status=status)
        sql = f"SELECT record FROM messages{where} ORDER BY seq DESC" + _limit(limit)
        return [Message.from_record(jsoncodec.loads(r[0])) for r in self._db.execute(sql, args)]

    def queued_messages(self) -> list[Message]:
        rows = self._db.execute(
            "SELECT record FROM messages WHERE status = ? ORDER BY seq", (Delivery.QUEUED.value,)
        )
        return [Message.from_record(jsoncodec.loads(r[0])) for r in rows]

    def count_messages_by_status(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) FROM messages GROUP BY status")
        return {status: count for status, count in rows}

    def clear_messages(self, account: str | None = None) -> None:
        where, args = _filters(account=account)
        self._counts["messages"] -= self._execute(f"DELETE FROM messages{where}", args).rowcount

    def clear(self, account: str | None = None) -> None:
        where, args = _filters(account=account)
        self.clear_messages(account)
        self._counts["otps"] -= self._execute(f"DELETE FROM otps{where}", args).rowcount
        self._write(f"DELETE FROM deliveries{where}", args)

    # -- callback deliveries and the clock (records only the dispatcher reads) -----------

    def save_delivery(self, record: dict[str, Any]) -> None:
        self._write(
            "INSERT INTO deliveries (delivery_id, account, state, record) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (delivery_id) DO UPDATE SET state = excluded.state, "
            "record = excluded.record",
            (record["delivery_id"], record["account"], record["state"], _dumps(record)),
        )

    def delete_delivery(self, delivery_id: str) -> None:
        self._write("DELETE FROM deliveries WHERE delivery_id = ?", (delivery_id,))

    def load_deliveries(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT record FROM deliveries ORDER BY rowid")
        return [jsoncodec.loads(r[0]) for r in rows]

    def save_clock(self, state: dict[str, Any]) -> None:
        self._write(
            "INSERT INTO meta (key, value) VALUES ('clock', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (_dumps(state),),
        )

    def load_clock(self) -> dict[str, Any] | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'clock'").fetchone()
        return None if row is None else dict(jsoncodec.loads(row[0]))


def _filters(**given: str | None) -> tuple[str, tuple[str, ...]]:
    parts, args = [], []
    for column, value in given.items():
        if value is not None:
            parts.append(f"{column} = ?")
            args.append(value)
    return (" WHERE " + " AND ".join(parts) if parts else ""), tuple(args)


def _limit(limit: int | None) -> str:
    return "" if limit is None else f" LIMIT {int(limit)}"
