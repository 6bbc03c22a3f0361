"""SMS encoding and segmentation (GSM 03.38 7-bit or UCS-2), and template rendering.

A text that uses only the GSM-7 alphabet travels in 7-bit septets: 160 fit in one
SMS, 153 per part once it must be split (the rest carries the concatenation header).
Characters of the GSM extension table (``^ { } \\ [ ~ ] | €`` and form feed) take two
septets, and an escape pair is never split across parts. Any other character switches
the whole text to UCS-2: 70 UTF-16 code units in one SMS, 67 per part, a surrogate
pair never split.

Example::

    >>> segment("Your code is 1234").parts
    1
    >>> segment("Ваш код: 1234").encoding
    'UCS-2'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

GSM7: Final = "GSM-7"
UCS2: Final = "UCS-2"

_GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")

# (characters in one SMS, characters per part of a multipart SMS)
_LIMITS: Final = {GSM7: (160, 153), UCS2: (70, 67)}


@dataclass(frozen=True, slots=True)
class Segmentation:
    encoding: str
    parts: int
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2


_GSM7_ALL: Final = _GSM7_BASIC | _GSM7_EXTENSION


def encoding_of(text: str) -> str:
    """``GSM-7`` when every character is in the GSM alphabet (or its extension)."""
    return GSM7 if _GSM7_ALL.issuperset(text) else UCS2


def _unit_sizes(text: str, encoding: str) -> list[int]:
    """Units each character occupies; characters are never split between parts."""
    if encoding == GSM7:
        return [2 if ch in _GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _units(text: str, encoding: str) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) of the whole text."""
    if encoding == UCS2:
        return len(text.encode("utf-16-le")) // 2
    if _GSM7_EXTENSION.isdisjoint(text):
        return len(text)
    return len(text) + sum(1 for ch in text if ch in _GSM7_EXTENSION)


def segment(text: str) -> Segmentation:
    """How many SMS parts ``text`` needs, and in which encoding."""
    encoding = encoding_of(text)
    total = _units(text, encoding)
    single, per_part = _LIMITS[encoding]
    if total <= single:
        return Segmentation(encoding, 1, total)
    parts, used = 1, 0
    for size in _unit_sizes(text, encoding):
        if used + size > per_part:
            parts += 1
            used = 0
        used += size
    return Segmentation(encoding, parts, total)


PIN_PLACEHOLDER: Final = "{{pin}}"

_SEGMENTS: dict[tuple[str, int], Segmentation] = {}
_MAX_SEGMENTS: Final = 1024


def segment_for(template: str, pin_length: int) -> Segmentation:
    """``segment(render(template, pin))`` for any PIN of ``pin_length`` characters.

    Every PIN alphabet (and every fixed PIN) is in GSM-7's basic set, one unit per
    character, so the parts and the encoding depend only on the template and the PIN's
    length: computed once per pair (requests mostly share a template and a length).
    """
    key = (template, pin_length)
    found = _SEGMENTS.get(key)
    if found is None:
        if len(_SEGMENTS) >= _MAX_SEGMENTS:
            _SEGMENTS.clear()
        found = _SEGMENTS[key] = segment(render(template, "0" * pin_length))
    return found


def render(template: str, pin: str) -> str:
    """The SMS text: every ``{{pin}}`` in the template replaced by the PIN."""
    return template.replace(PIN_PLACEHOLDER, pin)
