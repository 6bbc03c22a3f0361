"""How much a store keeps: at most ``max_messages`` messages (and as many OTPs), and
``max_requests`` entries of the request journal, none older than ``max_age`` seconds of
simulator time. Applied when something is inserted, oldest first, so memory stays flat
under an endless stream.

Two reusable pieces apply it in O(1) per insert, whatever the store's size:

* :class:`RetainedMap`, for in-memory collections: a dict in insertion order plus a
  FIFO of its keys, so the oldest entry is found without walking the dict (a dict whose
  front is full of deleted slots costs a scan of them on every ``next(iter(d))``);
* :class:`TableRetention`, for SQLite tables: a row count and the oldest creation time
  kept in memory, and deletes of the oldest rows by an indexed range, in batches.

Example::

    otps = RetainedMap(Retention(max_messages=3), created_at=lambda o: o.created_at)
    otps.put(otp.otp_id, otp)            # evicts the oldest beyond 3 (or too old)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

V = TypeVar("V")


@dataclass(slots=True)
class Retention:
    max_messages: int = 100_000
    max_age: float = 86_400.0
    max_requests: int = 10_000
    # The shared simulator clock, set by the engine that runs the store: age is measured
    # on it, so an account whose own clock runs days ahead cannot age out everyone
    # else's records by storing one of its own.
    now: Callable[[], float] | None = field(default=None, compare=False, repr=False)

    def stamp(self, created_at: float) -> float:
        """The time a record created at ``created_at`` (on its account's own clock,
        which may run ahead or behind) counts as stored, for its age: the shared
        clock's now when an engine runs the store, else its own time."""
        return self.now() if self.now is not None else created_at

    def cutoff(self, stored_at: float) -> float:
        """Anything stored before this is too old to keep, as something is stored at
        ``stored_at`` (a :meth:`stamp`)."""
        return stored_at - self.max_age

    @property
    def batch(self) -> int:
        """How many of the oldest rows a table store deletes at once when it is full: 1 %
        of the cap (at most 1,000), so it keeps between ``max_messages - batch`` and
        ``max_messages`` rows, and exactly ``max_messages`` below a cap of 200."""
        return max(1, min(1000, self.max_messages // 100))


class RetainedMap(Generic[V]):
    """Values by key, in insertion order, with retention applied at each insert in O(1).

    ``put`` of a new key appends it; of a known key replaces the value in place (its
    age and place are unchanged). Eviction takes the oldest first, while there are more
    than ``max_messages`` entries or the oldest was stored (:meth:`Retention.stamp`)
    before the cutoff, and
    hands each evicted value to ``on_evict`` (for a store's secondary indexes).

    Keys removed with :meth:`pop` stay in the FIFO until they reach its front (they are
    counted, and the FIFO is rebuilt when they outnumber the live keys), so a removal
    is O(1) too.
    """

    __slots__ = (
        "_created_at", "_items", "_n", "_on_evict", "_order", "_stale", "_stored", "retention",
    )  # fmt: skip

    def __init__(
        self,
        retention: Retention,
        created_at: Callable[[V], float],
        on_evict: Callable[[V], None] | None = None,
    ) -> None:
        self.retention = retention
        self._created_at = created_at
        self._on_evict = on_evict
        self._items: dict[str, V] = {}
        self._stored: dict[str, float] = {}  # each live key's stamp (its age counts from it)
        self._order: deque[str] = deque()  # every key put, oldest first (some stale)
        self._stale: dict[str, int] = {}  # removed keys still in _order: how many times
        self._n = 0  # stale entries in _order

    def put(self, key: str, value: V) -> None:
        items = self._items
        if key in items:
            items[key] = value
            return
        items[key] = value
        retention = self.retention
        # Retention.stamp and .cutoff, inline (every insert of a store comes here).
        clock = retention.now
        stored = self._stored[key] = clock() if clock is not None else self._created_at(value)
        order = self._order
        order.append(key)
        cutoff = stored - retention.max_age
        # Nothing stale: the FIFO's front is the oldest live key; if it may stay, all may.
        if (
            not self._stale
            and len(items) <= retention.max_messages
            and self._stored[order[0]] >= cutoff
        ):
            return
        self._evict(cutoff)

    def _oldest(self) -> str:
        """The oldest live key (dropping stale keys at the front); the map is not empty."""
        order, stale = self._order, self._stale
        while stale:
            key = order[0]
            times = stale.get(key)
            if times is None:
                break
            order.popleft()
            self._n -= 1
            if times == 1:
                del stale[key]
            else:
                stale[key] = times - 1
        return order[0]

    def _evict(self, cutoff: float) -> None:
        items, order, limit = self._items, self._order, self.retention.max_messages
        stored = self._stored
        while items:
            key = self._oldest()
            if len(items) <= limit and stored[key] >= cutoff:
                return
            order.popleft()
            oldest = items.pop(key)
            del stored[key]
            if self._on_evict is not None:
                self._on_evict(oldest)

    def pop(self, key: str) -> V | None:
        """Remove ``key`` (not an eviction: ``on_evict`` is not called)."""
        value = self._items.pop(key, None)
        if value is None:
            return None
        del self._stored[key]
        self._stale[key] = self._stale.get(key, 0) + 1
        self._n += 1
        if self._n > len(self._items) + 1024:
            self._compact()
        return value

    def _compact(self) -> None:
        self._order = deque(self._items)
        self._stale.clear()
        self._n = 0

    def get(self, key: str) -> V | None:
        return self._items.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def values(self) -> Iterator[V]:
        """Oldest first."""
        return iter(self._items.values())

    def newest_first(self) -> Iterator[V]:
        return reversed(self._items.values())

    def as_dict(self) -> dict[str, V]:
        """The live entries in insertion order (read only: change them through the map)."""
        return self._items


class _Connection(Protocol):
    def execute(self, sql: str, args: Any = ..., /) -> Any: ...


class TableRetention:
    """Retention for one SQLite table with an indexed ``created_at`` column and an
    indexed insertion-order column ``order`` (the rowid, or a sequence).

    The row count and the oldest creation time are kept in memory, so a table within
    its limits costs no query at all; a full one deletes its oldest ``retention.batch``
    rows in one statement (an indexed range: ``order <= (the batch's last)``), and a
    too-old front by ``created_at < cutoff`` (an indexed range too). Nothing scans the
    table, and a batch of deletes shares its pages and its commit.

    Call :meth:`inserted` after each new row (inside the writer's transaction) and
    :meth:`removed` after deleting rows yourself (a clear), :meth:`recount` after a
    rollback. ``on_delete``, if given, hears of each delete it makes: every row up to
    an ``order`` value (``(last, [])``), or the rows too old (``(None, [their order
    values])``, read with ``RETURNING``); the SQLite store cuts the links to the OTPs
    it deleted.
    """

    def __init__(
        self,
        db: _Connection,
        table: str,
        order: str,
        retention: Retention,
        on_delete: Callable[[int | None, list[int]], None] | None = None,
    ) -> None:
        self._db = db
        self.table = table
        self.order = order
        self.retention = retention
        # Told of each delete: every row up to this ``order`` value, or these rows.
        self._on_delete = on_delete
        self.count = 0
        self.oldest = math.inf
        self.recount()

    def recount(self) -> None:
        self.count = int(self._db.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0])
        self._find_oldest()

    def removed(self, count: int) -> None:
        """``count`` rows were deleted by someone else (a clear)."""
        self.count -= count
        self._find_oldest()

    def _find_oldest(self) -> None:
        row = self._db.execute(f"SELECT MIN(created_at) FROM {self.table}").fetchone()
        self.oldest = math.inf if row[0] is None else float(row[0])

    def inserted(self, created_at: float) -> int:
        """Count a new row, then apply retention; returns how many rows were deleted."""
        self.count += 1
        if created_at < self.oldest:
            self.oldest = created_at
        retention = self.retention
        cutoff = retention.cutoff(created_at)
        removed = 0
        if self.oldest < cutoff:
            sql = f"DELETE FROM {self.table} WHERE created_at < ?"
            if self._on_delete is None:
                removed += self._db.execute(sql, (cutoff,)).rowcount
            else:
                gone = self._db.execute(f"{sql} RETURNING {self.order}", (cutoff,)).fetchall()
                removed += len(gone)
                self._on_delete(None, [row[0] for row in gone])
        if self.count - removed > retention.max_messages:
            # Down to max_messages - batch + 1 rows: the next batch - 1 inserts delete nothing.
            excess = self.count - removed - retention.max_messages + retention.batch - 1
            table, order = self.table, self.order
            last = self._db.execute(
                f"SELECT {order} FROM {table} ORDER BY {order} LIMIT 1 OFFSET ?",
                (excess - 1,),
            ).fetchone()
            if last is not None:
                sql = f"DELETE FROM {table} WHERE {order} <= ?"
                removed += self._db.execute(sql, (last[0],)).rowcount
                if self._on_delete is not None:
                    self._on_delete(last[0], [])
        if removed:
            self.count -= removed
            self._find_oldest()
        return removed
