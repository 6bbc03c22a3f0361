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
import secrets
import string
from typing import Final

ALPHABETS: Final[dict[str, str]] = {
    "numbers": string.digits,
    "letters": string.ascii_uppercase,
    "alphanumeric": string.ascii_uppercase + string.digits,
}


def generate(pin_type: str, length: int, rng: random.Random | None = None) -> str:
    """A random PIN of ``length`` characters from the ``pin_type`` alphabet.

    ``rng`` defaults to the operating system's CSPRNG (``secrets``); pass a seeded
    ``random.Random`` only to replay a run deterministically.
    """
    alphabet = ALPHABETS[pin_type]
    if rng is not None:
        return "".join(rng.choice(alphabet) for _ in range(length))
    # One read of the OS CSPRNG per PIN. Bytes at or above the largest multiple of the
    # alphabet's size are dropped (rejection sampling), so every character is uniform.
    size = len(alphabet)
    limit = 256 - 256 % size
    chars: list[str] = []
    while len(chars) < length:
        chars.extend(alphabet[b % size] for b in secrets.token_bytes(length * 2) if b < limit)
    return "".join(chars[:length])


def matches(expected: str, given: str) -> bool:
    """Case-sensitive comparison in constant time (no timing oracle on the PIN)."""
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))
