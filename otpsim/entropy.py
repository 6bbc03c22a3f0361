"""Random bytes from the operating system's CSPRNG, read a block at a time.

A ``POST /otp`` needs 32 random bytes for two ids and a few for the PIN. Reading them
with ``secrets.token_bytes`` on every call costs one ``getrandom`` system call each,
three per request, and under load system calls are dear. The pool reads 4 KiB with
``secrets.token_bytes`` and hands every byte out once. It is guarded by a lock (the
pytest plugin runs a simulator in its own thread) and emptied in a forked child, so a
parent and its child never hand out the same bytes.

Example::

    >>> len(token_bytes(16))
    16
"""

from __future__ import annotations

import os
import secrets
import threading

BLOCK = 4096
MAX_SEED = 2**64 - 1  # seeds (--seed, a scenario's seed) are whole numbers from 0 to this


class EntropyPool:
    def __init__(self, block: int = BLOCK) -> None:
        self._block = block
        self._buffer = b""
        self._position = 0
        self._lock = threading.Lock()

    def take(self, count: int) -> bytes:
        """``count`` bytes no one else has been given."""
        with self._lock:
            start = self._position
            end = start + count
            if end > len(self._buffer):
                self._buffer = secrets.token_bytes(max(self._block, count))
                start, end = 0, count
            self._position = end
            return self._buffer[start:end]

    def forget(self) -> None:
        """Drop the unused bytes: for a forked child, which must not repeat its parent's.

        A fresh lock too: the parent's may have been held by another thread at the fork.
        """
        self._lock = threading.Lock()
        self._buffer = b""
        self._position = 0


_POOL = EntropyPool()
os.register_at_fork(after_in_child=_POOL.forget)


def token_bytes(count: int) -> bytes:
    """Like ``secrets.token_bytes``, from the shared pool."""
    return _POOL.take(count)
