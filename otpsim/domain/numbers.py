"""Phone-number text that needs no numbering plan (light: ``otpsim tail`` uses it)."""

from __future__ import annotations


def normalize_phone(raw: str) -> str:
    """A phone filter as E.164: its digits after a ``+``.

    A ``+`` left unencoded in a query string arrives as a space, so it cannot be relied on.
    """
    digits = "".join(ch for ch in raw if ch.isdigit())
    return "+" + digits
