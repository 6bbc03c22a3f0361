"""Validation of a ``POST /otp`` body into an :class:`OtpRequest`.

Each broken rule raises :class:`~otpsim.errors.ProviderError` with the contract's
code. Fields are checked in the contract's table order, so a body with several
problems always gets the same, first, error. JSON ``null`` counts as "not sent".

Example::

    >>> req = parse_new_otp({"phoneNumber": "+33612345678"}, OtpDefaults())
    >>> req.country_iso, req.pin_type
    ('FR', 'numbers')
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping
from typing import Any

from yarl import URL

from otpsim.domain import phones
from otpsim.domain.defaults import OtpDefaults
from otpsim.domain.otp import OtpRequest
from otpsim.domain.pins import ALPHABETS
from otpsim.domain.sms import PIN_PLACEHOLDER
from otpsim.errors import E, ErrorSpec, ProviderError

TTL_RANGE = (60, 1800)
MAX_ATTEMPTS_RANGE = (1, 10)
PIN_LENGTH_RANGE = (4, 10)
FROM_LENGTH_RANGE = (3, 15)
MAX_TEMPLATE = 1600  # otpsim's bound (ten GSM-7 parts' worth): a template is not a book
MAX_URL_LENGTH = 2048

_DIGITS = re.compile(r"\s*-?\d{1,9}\s*")
_TEMPLATE_KEY = re.compile(r"^template_([a-z]{2})$")
_UUID_V1_V5 = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.IGNORECASE
)


def _present(body: Mapping[str, Any], key: str) -> bool:
    return body.get(key) is not None


def _integer(
    value: Any, name: str, bounds: tuple[int, int], errors: tuple[ErrorSpec, ErrorSpec, ErrorSpec]
) -> int:
    """An integer field: a JSON number or a string of digits, within bounds."""
    nan, too_low, too_high = errors
    whole_float = isinstance(value, float) and value.is_integer()
    digits = isinstance(value, str) and _DIGITS.fullmatch(value) is not None
    if isinstance(value, bool) or not (isinstance(value, int) or whole_float or digits):
        raise ProviderError(nan, f"The parameter '{name}' is not a number (got {value!r})")
    number = int(value)
    low, high = bounds
    if number < low:
        raise ProviderError(too_low)
    if number > high:
        raise ProviderError(too_high)
    return number


def _template(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProviderError(E.TEMPLATE_INVALID, f"The parameter '{name}' is empty or not set")
    if len(value) > MAX_TEMPLATE:
        raise ProviderError(
            E.TEMPLATE_INVALID,
            f"The parameter '{name}' is too long ({len(value)} characters; at most {MAX_TEMPLATE})",
        )
    if PIN_PLACEHOLDER not in value:
        raise ProviderError(
            E.TEMPLATE_INVALID, f"The parameter '{name}' does not contain placeholder {{{{pin}}}}"
        )
    return value


def _choose_template(
    body: Mapping[str, Any], country_iso: str, default: str
) -> tuple[str, str | None]:
    """The localized template for the number's country, else ``template``, else default."""
    localized: dict[str, str] = {}
    for key, value in body.items():
        match = _TEMPLATE_KEY.match(key) if key.startswith("template_") else None
        if match and value is not None:
            localized[match.group(1)] = _template(value, key)
    generic = _template(body["template"], "template") if _present(body, "template") else None
    for language in phones.country_languages(country_iso):
        if language in localized:
            return localized[language], language
    return (generic or default), None


def _sender(value: Any) -> str:
    if isinstance(value, str) and not value.strip():
        raise ProviderError(E.FROM_EMPTY)
    low, high = FROM_LENGTH_RANGE
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise ProviderError(E.FROM_LENGTH)
    return value


def _callback_url(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH or any(c.isspace() for c in value):
        raise ProviderError(E.CALLBACK_URL_INVALID)
    try:
        client_target(value)
    except ValueError as exc:
        raise ProviderError(
            E.CALLBACK_URL_INVALID,
            f"The parameter 'otpCallbackUrl' is not a URL callbacks can be sent to ({exc})",
        ) from None
    return value


_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
_ALL_DIGITS = re.compile(r"[0-9.]+")


def client_target(url: str) -> tuple[str, str, int]:
    """The (scheme, host, port) the callbacks' HTTP client connects to for ``url``: the
    URL parsed as aiohttp parses it (yarl), the host as it goes to the resolver (IDNA
    ASCII, so ``ⓛocalhost`` and ``127。0。0。1`` are ``localhost`` and ``127.0.0.1``),
    lowercased, without brackets or a final dot; the scheme's port when none is given.

    ValueError, saying why, for a URL that client could not send: not http(s), no host,
    a host no resolver knows (``127.0.0.1%3A80``, ``a..b``), a legacy numeric address
    (``127.1``, ``2130706433``, ``0x7f.1``: aiohttp refuses them), or port 0."""
    try:
        parsed = URL(url)
        port = parsed.port
        raw_host = parsed.raw_host
    except (ValueError, UnicodeError) as exc:
        raise ValueError(str(exc) or "malformed") from None
    scheme = parsed.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("expected an http:// or https:// URL")
    if not raw_host or port is None:
        raise ValueError("no host")
    if not 0 < port < 65536:
        raise ValueError(f"port {port} cannot be connected to")
    if ":" in raw_host:  # IPv6 (yarl has removed the brackets)
        try:
            host = ipaddress.ip_address((parsed.host or "").lower()).compressed
        except ValueError:
            raise ValueError(f"{raw_host!r} is not an IPv6 address") from None
        return scheme, host, port
    host = raw_host.lower().removesuffix(".")
    legacy = _ALL_DIGITS.fullmatch(host) or (
        all(_LABEL.fullmatch(label) for label in host.split(".")) and ip_of(host) is not None
    )
    if legacy:
        try:
            return scheme, str(ipaddress.IPv4Address(host)), port
        except ValueError:
            raise ValueError(f"{raw_host!r} is not a dotted-quad IPv4 address") from None
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise ValueError(f"{raw_host!r} is not a host name")
    return scheme, host, port


def url_target(url: str) -> tuple[str, int]:
    """The (host, port) a URL connects to (see :func:`client_target`). ValueError on a
    URL the client could not send."""
    _, host, port = client_target(url)
    return host, port


def ip_of(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names if it is a literal, in any form a resolver accepts
    (``127.1``, ``2130706433``, ``0x7f.1``, ``::ffff:127.0.0.1``); None for a name."""
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        try:  # the classic forms getaddrinfo still accepts for IPv4
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, ValueError):
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback_host(host: str) -> bool:
    """Whether a (normalized) host always means this machine: ``localhost`` and its
    subdomains (RFC 6761), loopback addresses, and the unspecified address."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    address = ip_of(host)
    return address is not None and (address.is_loopback or address.is_unspecified)


def parse_new_otp(body: Mapping[str, Any], defaults: OtpDefaults) -> OtpRequest:
    """Validate a ``POST /otp`` body; raises ProviderError on the first broken rule."""
    raw_phone = body.get("phoneNumber")
    if raw_phone is None or (isinstance(raw_phone, str) and not raw_phone.strip()):
        raise ProviderError(E.PHONE_MISSING)
    if not isinstance(raw_phone, str):
        raise ProviderError(E.PHONE_INVALID, "The phone number provided is invalid (not a string)")
    raw_country = body.get("countryIso")
    if raw_country is not None and not isinstance(raw_country, str):
        raise ProviderError(E.COUNTRY_INVALID)
    phone = phones.parse(raw_phone, raw_country or None)
    if len(body) == 1 or (len(body) == 2 and "countryIso" in body):
        # Only the number (the usual request): every other field is the default.
        return _interned(
            phone.e164, phone.country_iso, defaults.sender, defaults.template, None,
            defaults.ttl, defaults.max_attempts, defaults.pin_type, defaults.pin_length,
            None, None,
        )  # fmt: skip

    sender = (
        _sender(body["from"]) if "from" in body and body["from"] is not None else defaults.sender
    )
    template, language = _choose_template(body, phone.country_iso, defaults.template)

    ttl = defaults.ttl
    if _present(body, "ttl"):
        ttl = _integer(body["ttl"], "ttl", TTL_RANGE, (E.TTL_NAN, E.TTL_TOO_LOW, E.TTL_TOO_HIGH))
    max_attempts = defaults.max_attempts
    if _present(body, "maxAttempts"):
        max_attempts = _integer(
            body["maxAttempts"],
            "maxAttempts",
            MAX_ATTEMPTS_RANGE,
            (E.ATTEMPTS_NAN, E.ATTEMPTS_TOO_LOW, E.ATTEMPTS_TOO_HIGH),
        )
    pin_type = defaults.pin_type
    if "pinType" in body and body["pinType"] is not None:
        value = body["pinType"]
        if isinstance(value, str) and not value.strip():
            raise ProviderError(E.PIN_TYPE_EMPTY)
        if not isinstance(value, str) or value not in ALPHABETS:
            raise ProviderError(E.PIN_TYPE_INVALID)
        pin_type = value
    pin_length = defaults.pin_length
    if _present(body, "pinLength"):
        pin_length = _integer(
            body["pinLength"],
            "pinLength",
            PIN_LENGTH_RANGE,
            (E.PIN_LENGTH_NAN, E.PIN_LENGTH_TOO_LOW, E.PIN_LENGTH_TOO_HIGH),
        )
    track_id = None
    if _present(body, "trackId"):
        track_id = body["trackId"]
        if not isinstance(track_id, str) or not _UUID_V1_V5.match(track_id):
            raise ProviderError(E.TRACK_ID_INVALID)
        # Echoed (and sent in callbacks) in lowercase, as the provider's SDKs expect:
        # their models refuse an uppercase UUID.
        track_id = track_id.lower()
    callback_url = None
    if _present(body, "otpCallbackUrl"):
        callback_url = _callback_url(body["otpCallbackUrl"])

    return _interned(
        phone.e164, phone.country_iso, sender, template, language, ttl, max_attempts,
        pin_type, pin_length, track_id, callback_url,
    )  # fmt: skip


_INTERNED: dict[tuple[Any, ...], OtpRequest] = {}
_MAX_INTERNED = 4096


def _interned(*fields: Any) -> OtpRequest:
    """One shared instance per distinct request: an OTP store holds hundreds of thousands
    of them, mostly alike (same number, template and defaults). They are frozen, so
    sharing is safe; looked up by their fields, so a repeat costs no new object."""
    found = _INTERNED.get(fields)
    if found is not None:
        return found
    if len(_INTERNED) >= _MAX_INTERNED:
        _INTERNED.clear()
    request = _INTERNED[fields] = OtpRequest(*fields)
    return request


def check_defaults(defaults: OtpDefaults) -> None:
    """Validate configured defaults with the same rules a request gets.

    Each default is checked on its own first, so the error's ``param`` names the one
    at fault (its API name: ``from``, ``template``, ``ttl``, ...)."""
    alone = {
        "from": defaults.sender,
        "template": defaults.template,
        "ttl": defaults.ttl,
        "maxAttempts": defaults.max_attempts,
        "pinType": defaults.pin_type,
        "pinLength": defaults.pin_length,
    }
    for param, value in alone.items():
        try:
            parse_new_otp({"phoneNumber": "+33612345678", param: value}, OtpDefaults())
        except ProviderError as exc:
            exc.param = param
            raise
    probe = {
        "phoneNumber": "+33612345678",
        "from": defaults.sender,
        "template": defaults.template,
        "ttl": defaults.ttl,
        "maxAttempts": defaults.max_attempts,
        "pinType": defaults.pin_type,
        "pinLength": defaults.pin_length,
    }
    parse_new_otp(probe, defaults)
