"""PIN generation and constant-time comparison.

Example::

    >>> import random
    >>> pin = generate("numbers", 6, random.Random(1))
    >>> len(pin), pin.isdigit()
    (6, True)
    >>> matches(pin, pin)
    True
"""

from __future__ import annotations

import hmac
import random
import string
from typing import Final

from otpsim import entropy

ALPHABETS: Final[dict[str, str]] = {
    "numbers": string.digits,
    "letters": string.ascii_uppercase,
    "alphanumeric": string.ascii_uppercase + string.digits,
}


def _sampling_table(alphabet: str) -> tuple[bytes, bytes]:
    """For ``bytes.translate``: each byte value to a character of the alphabet, and the
    byte values to drop (those at or above the largest multiple of the alphabet's size:
    rejection sampling, so every character is equally likely)."""
    size = len(alphabet)
    limit = 256 - 256 % size
    table = bytes(ord(alphabet[b % size]) if b < limit else 0 for b in range(256))
    return table, bytes(range(limit, 256))


_TABLES: Final = {name: _sampling_table(alphabet) for name, alphabet in ALPHABETS.items()}


def generate(pin_type: str, length: int, rng: random.Random | None = None) -> str:
    """A random PIN of ``length`` characters from the ``pin_type`` alphabet.

    ``rng`` defaults to the operating system's CSPRNG (``secrets``, through
    :mod:`otpsim.entropy`); pass a seeded ``random.Random`` only to replay a run.
    """
    if rng is not None:
        alphabet = ALPHABETS[pin_type]
        return "".join(rng.choice(alphabet) for _ in range(length))
    return from_random_bytes(pin_type, length, b"")


def from_random_bytes(pin_type: str, length: int, raw: bytes) -> str:
    """A PIN drawn from ``raw`` (random bytes from the OS CSPRNG, e.g. ``2 * length`` read
    with other random bytes a request needs), read further from the pool if rejection
    sampling leaves too few."""
    table, dropped = _TABLES[pin_type]
    pin = raw.translate(table, dropped)
    while len(pin) < length:  # twice the bytes needed: a second read is rare
        pin += entropy.token_bytes(length * 2).translate(table, dropped)
    return pin[:length].decode("ascii")


FIXED_LENGTH: Final = (4, 10)  # as a request's pinLength may be


def check_fixed(pin: str) -> str:
    """A fixed PIN (``--fixed-pin``, a scenario's ``network.fixed_pins``) as given;
    ValueError saying what was expected."""
    low, high = FIXED_LENGTH
    if not low <= len(pin) <= high or any(c not in ALPHABETS["alphanumeric"] for c in pin):
        raise ValueError(
            f"expected a PIN of {low} to {high} digits or capital letters, got {pin[:32]!r}"
        )
    return pin


def misfit(pin: str, pin_type: str, length: int) -> str | None:
    """Why ``pin`` cannot be a PIN of this type and length (None: it can be one).

    >>> misfit("1234", "numbers", 6)
    'its pinLength is 6'
    """
    problems = []
    if len(pin) != length:
        problems.append(f"its pinLength is {length}")
    if any(c not in ALPHABETS[pin_type] for c in pin):
        problems.append(f"its pinType is {pin_type}")
    return " and ".join(problems) or None


def matches(expected: str, given: str) -> bool:
    """Case-sensitive comparison in constant time (no timing oracle on the PIN)."""
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))
