"""Phone numbers: parsing and validation with ``phonenumbers``, and country languages.

Example::

    >>> parse("0612345678", "FR")
    PhoneNumber(e164='+33612345678', country_iso='FR')
    >>> country_languages("BE")
    ('nl', 'fr', 'de')
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import phonenumbers
from babel.languages import get_official_languages

from otpsim.errors import E, ProviderError


class PhoneNumber(NamedTuple):
    e164: str
    country_iso: str


def is_country(iso: str) -> bool:
    """True for an ISO-3166 alpha-2 code that has a telephone numbering plan."""
    return iso.upper() in phonenumbers.SUPPORTED_REGIONS


def parse(raw: str, country_iso: str | None) -> PhoneNumber:
    """Parse an E.164 number, or a national one with its country.

    Raises ProviderError 2002 (country needed), 2003 (bad country) or 2020 (invalid).
    ``country_iso`` is ignored when ``raw`` is in international form. Results (and
    refusals) are cached: tests and load runs send the same few numbers again and again,
    and libphonenumber's validation is the most expensive step of a request.
    """
    if len(raw) > 64:  # no phone number is that long; keep junk out of the cache
        raise ProviderError(E.PHONE_INVALID)
    found = _parse_cached(raw, country_iso)
    if isinstance(found, ProviderError):
        raise ProviderError(found.spec, found.message)
    return found


@functools.lru_cache(maxsize=4096)
def _parse_cached(raw: str, country_iso: str | None) -> PhoneNumber | ProviderError:
    try:
        return _parse(raw, country_iso)
    except ProviderError as refused:
        return refused


def _parse(raw: str, country_iso: str | None) -> PhoneNumber:
    text = raw.strip()
    region: str | None = None
    if not text.startswith("+"):
        if not country_iso:
            raise ProviderError(
                E.COUNTRY_MISSING,
                "The parameter 'countryIso' is empty or not set "
                "(needed when 'phoneNumber' is not in E.164 format, e.g. +33612345678)",
            )
        if not is_country(country_iso):
            raise ProviderError(
                E.COUNTRY_INVALID,
                f"Country ISO provided is invalid: {country_iso!r} "
                "(expected an ISO-3166 alpha-2 code such as 'GB' or 'FR')",
            )
        region = country_iso.upper()
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise ProviderError(E.PHONE_INVALID) from None
    if not phonenumbers.is_valid_number(number):
        raise ProviderError(E.PHONE_INVALID)
    country = phonenumbers.region_code_for_number(number)
    if not country:
        raise ProviderError(E.PHONE_INVALID)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return PhoneNumber(e164, country)


def has_country(iso: str) -> bool:
    """False for libphonenumber's "001": a non-geographic number (+800, +870, +882, ...),
    which has no two-letter country for the provider's ``countryIso``."""
    return len(iso) == 2 and iso.isalpha()


def describe(phone: PhoneNumber) -> dict[str, str]:
    """The provider's DataNumberValidate: number, country, network operator, timezone.

    The operator is the number range's original one (libphonenumber's carrier data; a
    ported number keeps it), ``""`` when unknown; the timezone is the range's first.
    """
    from phonenumbers import carrier, timezone

    number = phonenumbers.parse(phone.e164)
    zones = [z for z in timezone.time_zones_for_number(number) if z != "Etc/Unknown"]
    return {
        "phoneNumber": phone.e164,
        "countryIso": phone.country_iso,
        "networkOperator": carrier.name_for_number(number, "en"),
        "timezone": zones[0] if zones else "UTC",
    }


@functools.lru_cache(maxsize=512)
def country_languages(country_iso: str) -> tuple[str, ...]:
    """Languages spoken in a country, most used first, as two-letter codes."""
    langs: list[str] = []
    for tag in get_official_languages(country_iso, de_facto=True):
        base = str(tag).split("_")[0]
        if base not in langs:
            langs.append(base)
    return tuple(langs)
