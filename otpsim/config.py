"""Settings: one frozen dataclass, and the one table of options that fills it.

Every setting has a default here and nowhere else. Each can be set, from weakest to
strongest, in a YAML config file (``--config``), an ``OTPSIM_*`` environment
variable, or a command-line flag. :data:`OPTIONS` is the single table from which the
CLI flags, the environment variables and the config-file keys are all derived.

Example::

    settings = Settings(rate_limit=10)
    settings = load_settings(cli={"port": 0}, env=os.environ)
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otpsim.domain.defaults import OtpDefaults
from otpsim.entropy import MAX_SEED
from otpsim.errors import OtpsimError, ProviderError

if TYPE_CHECKING:  # loaded only to read a --config file: yaml is not cheap
    from otpsim.yamlutil import YamlDoc

DEFAULT_PORT = 8790
_API_DEFAULTS = OtpDefaults()


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # Strict auth: when either is non-empty, only these credentials are accepted.
    api_keys: tuple[str, ...] = ()
    oauth_clients: tuple[tuple[str, str], ...] = ()
    token_ttl: int = 86400
    # Defaults for fields a POST /otp leaves out.
    default_from: str = _API_DEFAULTS.sender
    default_template: str = _API_DEFAULTS.template
    default_ttl: int = _API_DEFAULTS.ttl
    default_max_attempts: int = _API_DEFAULTS.max_attempts
    default_pin_type: str = _API_DEFAULTS.pin_type
    default_pin_length: int = _API_DEFAULTS.pin_length
    price_per_part: float = 0.05
    # Starting balances: (None, amount) for every account, (account, amount) for one;
    # amount None = unlimited. No entry: every account is unlimited.
    balances: tuple[tuple[str | None, float | None], ...] = ()
    # (number or pattern, PIN): these numbers always receive this PIN (first match wins).
    fixed_pins: tuple[tuple[str, str], ...] = ()
    # Countries (ISO alpha-2) where POST /otp answers 403 no_coverage.
    no_coverage: tuple[str, ...] = ()
    # Requests per window per credential; None = no limit (the default).
    rate_limit: int | None = None
    rate_limit_window: float = 60.0
    max_body_bytes: int = 64 * 1024
    # The HTTP edge (otpsim serve): connections, timeouts, long polls and websockets.
    max_connections: int = 1000  # beyond, the oldest idle one is closed (or a 503)
    max_streams: int = 200  # long polls (wait=) and websockets open at once
    header_timeout: float = 10.0  # seconds for a request line and its headers
    body_timeout: float = 30.0  # seconds for a request body
    keepalive_timeout: float = 75.0  # seconds an idle keep-alive connection stays open
    # Longest a GET /_sim/messages/latest?wait= may hold a request, in seconds.
    max_wait: float = 60.0  # also bounds a scenario rule's latency and hang
    # A seed makes PINs and ids reproducible (NOT secret): for replaying test runs only.
    seed: int | None = None
    clock_frozen: bool = False
    clock_start: str | None = None
    # Status callbacks (webhooks).
    callback_url: str | None = None  # for OTPs created without otpCallbackUrl
    callback_secret: str | None = None  # signs callbacks (Standard Webhooks) when set
    callback_batch_window: float = 0.2  # simulator seconds: events for one URL within share a POST
    callback_timeout: float = 10.0  # seconds per attempt
    # Delay before each attempt, seconds on the simulator clock (Standard Webhooks' schedule).
    callback_retry_schedule: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    callback_concurrency: int = 8  # attempts in flight at once
    callback_concurrency_per_receiver: int = 2  # ... to one receiver (a URL's origin)
    callback_max_pending: int = 10_000  # deliveries waiting; beyond, the largest backlog sheds
    callback_max_pending_per_receiver: int = 1_000  # ... for one receiver
    shutdown_grace: float = 5.0  # seconds in-flight callbacks get on shutdown
    scenario: str | None = None  # a scenario file whose network is active from the start
    max_account_scenarios: int = 1_000  # accounts with a scenario (or clock) of their own
    max_account_rules: int = 10_000  # rules in all accounts' own scenarios together
    # Storage: memory (the default), or SQLite at this path (survives restarts).
    db: str | None = None
    db_sync: str = "normal"  # "full": also survive a power cut (an fsync per write)
    # Retention, applied at insert time (oldest first): messages, OTPs, callback log.
    max_messages: int = 100_000
    max_age: float = 86_400.0  # seconds of simulator time
    max_requests: int = 10_000  # entries of the request journal (GET /_sim/requests)
    # Required to listen beyond loopback: guards /_sim/* and the inbox.
    admin_token: str | None = None
    # Listen beyond loopback with no admin token (throwaway CI containers only).
    insecure_open: bool = False
    # Host names (besides loopback and the bound address) that may reach the control API.
    allowed_hosts: tuple[str, ...] = ()
    log_level: str = "info"
    log_format: str = "text"  # or "json": one object per line
    log_pins: bool = False  # PINs are masked in logs unless this is set

    @property
    def strict_auth(self) -> bool:
        return bool(self.api_keys or self.oauth_clients)

    @property
    def default_balance(self) -> float | None:
        """The starting balance of an account without one of its own (None: unlimited)."""
        return next((amount for account, amount in self.balances if account is None), None)

    @property
    def account_balances(self) -> dict[str, float | None]:
        return {account: amount for account, amount in self.balances if account is not None}

    @property
    def otp_defaults(self) -> OtpDefaults:
        return OtpDefaults(
            sender=self.default_from,
            template=self.default_template,
            ttl=self.default_ttl,
            max_attempts=self.default_max_attempts,
            pin_type=self.default_pin_type,
            pin_length=self.default_pin_length,
        )


# -- value parsers (each takes a YAML value or a string; raises ValueError) ----------


MAX_INT_DIGITS = 30  # no setting needs more; Python refuses int() past 4,300 digits


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        digits = value.strip().lstrip("-")
        if not digits.isascii() or len(digits) > MAX_INT_DIGITS:
            raise ValueError(f"expected an integer of at most {MAX_INT_DIGITS} digits")
        number = int(value)
    else:
        raise ValueError(f"expected an integer, got {value!r:.40}")
    if abs(number) >= 10**MAX_INT_DIGITS:
        raise ValueError(f"expected an integer of at most {MAX_INT_DIGITS} digits")
    return number


def _seed(value: Any) -> int:
    seed = _int(value)
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"expected a whole number from 0 to {MAX_SEED}, got {seed}")
    return seed


def _port(value: Any) -> int:
    port = _int(value)
    if not 0 <= port <= 65535:
        raise ValueError(f"expected a port from 0 to 65535, got {port}")
    return port


def _positive_int(value: Any) -> int:
    number = _int(value)
    if number < 1:
        raise ValueError(f"expected a whole number of at least 1, got {number}")
    return number


def _optional_positive_int(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off", "none")):
        return None
    return _positive_int(value)


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def _positive_float(value: Any) -> float:
    number = _number(value)
    if number <= 0:
        raise ValueError(f"expected a positive number, got {value!r}")
    return number


def _non_negative_float(value: Any) -> float:
    number = _number(value)
    if number < 0:
        raise ValueError(f"expected a number of at least 0, got {value!r}")
    return number


def _text(value: Any) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"expected text, got {value!r}")
    return str(value)


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _host(value: Any) -> str:
    host = _text(value).strip()
    if not host:
        raise ValueError("expected a host name or IP address")
    return host


def _list(item: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, ...]]:
    """A list: a YAML sequence, or comma-separated text (environment variables)."""

    def parse(value: Any) -> tuple[Any, ...]:
        if isinstance(value, str):
            value = [v for v in (p.strip() for p in value.split(",")) if v]
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {value!r}")
        return tuple(item(v) for v in value)

    return parse


def _balance(value: Any) -> tuple[str | None, float | None]:
    """``AMOUNT`` (every account) or ``ACCOUNT:AMOUNT``; AMOUNT may be ``unlimited``."""
    text = _text(value).strip()
    account, _, amount = text.rpartition(":")
    if amount.strip().lower() == "unlimited":
        return account or None, None
    try:
        return account or None, _non_negative_float(amount)
    except ValueError:
        raise ValueError(
            f"expected AMOUNT or ACCOUNT:AMOUNT (a number of at least 0, or unlimited), "
            f"got {text!r}"
        ) from None


def _balances(value: Any) -> tuple[tuple[str | None, float | None], ...]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value]
    return _list(_balance)(value)


def _country(value: Any) -> str:
    from otpsim.domain.phones import is_country

    code = _text(value).strip().upper()
    if len(code) != 2 or not is_country(code):
        raise ValueError(f"expected an ISO-3166 alpha-2 country code such as FR, got {value!r}")
    return code


_HOST_NAME = re.compile(r"\*|[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?|\[?[0-9a-f:.]+\]?")


def _allowed_host(value: Any) -> str:
    """A host name or address as a ``Host`` header names it (no scheme, port or path);
    ``*`` allows any."""
    host = _text(value).strip().lower()
    if not _HOST_NAME.fullmatch(host):
        raise ValueError(
            f"expected a host name or IP address (no scheme, port or path), got {host!r}"
        )
    return host.strip("[]")


def number_pattern(text: str) -> str:
    """A carrier-rule ``match`` given as text: an E.164 number, a prefix ending in ``*``
    (``*`` alone: every number) or ``re:REGEX``; a missing ``+`` is added."""
    from otpsim.engine.network import Rule

    text = text.strip()
    if text.startswith("re:"):
        Rule.of(text)  # ValueError for a bad regular expression
        return text
    body = text[:-1] if text.endswith("*") else text
    if not text or (body and not re.fullmatch(r"\+?\d+", body)):
        raise ValueError(
            f"expected an E.164 number, a prefix ending in '*' or re:REGEX, got {text[:64]!r}"
        )
    return text if not body or body.startswith("+") else "+" + text


def _fixed_pin(value: Any) -> tuple[str, str]:
    """``NUMBER_OR_PATTERN=PIN``."""
    from otpsim.domain.pins import check_fixed

    text = _text(value)
    match, sep, pin = text.rpartition("=")
    if not sep or not match.strip():
        raise ValueError(f"expected NUMBER_OR_PATTERN=PIN, got {text[:64]!r}")
    return number_pattern(match), check_fixed(pin.strip())


def _api_key(value: Any) -> str:
    key = _text(value).strip()
    if not key:
        raise ValueError("an API key cannot be empty")
    return key


def _oauth_client(value: Any) -> tuple[str, str]:
    text = _text(value)
    client_id, sep, secret = text.partition(":")
    if not sep or not client_id or not secret:
        raise ValueError(f"expected ID:SECRET, got {text!r}")
    return client_id, secret


def _url(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    from otpsim.domain.request import client_target  # yarl: only when a URL is given

    text = _text(value).strip()
    if not text.startswith(("http://", "https://")) or len(text) <= len("https://"):
        raise ValueError(f"expected an absolute http(s) URL, got {text!r}")
    try:
        client_target(text)  # as the callbacks' HTTP client will send it
    except ValueError as exc:
        raise ValueError(f"expected a URL callbacks can be sent to, got {text!r} ({exc})") from None
    return text


def _schedule(value: Any) -> tuple[float, ...]:
    delays = _list(_non_negative_float)(value)
    if not delays:
        raise ValueError("expected at least one delay (0 = at once)")
    return delays


def _db_sync(value: Any) -> str:
    mode = _text(value).lower()
    if mode not in ("normal", "full"):
        raise ValueError(f"expected normal or full, got {mode!r}")
    return mode


def _log_format(value: Any) -> str:
    fmt = _text(value).lower()
    if fmt not in ("text", "json"):
        raise ValueError(f"expected text or json, got {fmt!r}")
    return fmt


def _log_level(value: Any) -> str:
    level = _text(value).lower()
    if level not in ("debug", "info", "warning", "error"):
        raise ValueError(f"expected one of debug, info, warning, error; got {level!r}")
    return level


@dataclass(frozen=True, slots=True)
class Option:
    """One setting as the CLI, the environment and the config file name it."""

    field: str
    flag: str
    key: tuple[str, ...]
    parse: Callable[[Any], Any]
    help: str
    metavar: str | None = None
    repeatable: bool = False

    @property
    def env(self) -> str:
        return "OTPSIM_" + self.flag.removeprefix("--").replace("-", "_").upper()


OPTIONS: tuple[Option, ...] = (
    Option("host", "--host", ("host",), _host, "address to bind (default 127.0.0.1)", "ADDR"),
    Option(
        "port",
        "--port",
        ("port",),
        _port,
        f"port (default {DEFAULT_PORT}; 0 picks a free one)",
        "N",
    ),
    Option(
        "api_keys",
        "--api-key",
        ("api_keys",),
        _list(_api_key),
        "accept only this API key (repeatable; env: comma-separated)",
        "KEY",
        repeatable=True,
    ),
    Option(
        "oauth_clients",
        "--oauth-client",
        ("oauth_clients",),
        _list(_oauth_client),
        "accept only this OAuth client (repeatable; env: comma-separated)",
        "ID:SECRET",
        repeatable=True,
    ),
    Option(
        "token_ttl",
        "--token-ttl",
        ("token_ttl",),
        _positive_int,
        "access token lifetime, seconds",
        "S",
    ),
    Option(
        "default_from", "--default-from", ("defaults", "from"), _text, "default sender id", "NAME"
    ),
    Option(
        "default_template",
        "--default-template",
        ("defaults", "template"),
        _text,
        "default SMS template (must contain {{pin}})",
        "TEXT",
    ),
    Option("default_ttl", "--default-ttl", ("defaults", "ttl"), _int, "default ttl, seconds", "S"),
    Option(
        "default_max_attempts",
        "--default-max-attempts",
        ("defaults", "maxAttempts"),
        _int,
        "default maxAttempts",
        "N",
    ),
    Option(
        "default_pin_type",
        "--default-pin-type",
        ("defaults", "pinType"),
        _text,
        "default pinType: numbers, letters or alphanumeric",
        "TYPE",
    ),
    Option(
        "default_pin_length",
        "--default-pin-length",
        ("defaults", "pinLength"),
        _int,
        "default pinLength",
        "N",
    ),
    Option(
        "price_per_part",
        "--price-per-part",
        ("price_per_part",),
        _non_negative_float,
        "price of one SMS part (cost = price x parts)",
        "PRICE",
    ),
    Option(
        "balances",
        "--balance",
        ("balance",),
        _balances,
        "starting balance: AMOUNT for every account, ACCOUNT:AMOUNT for one "
        "(repeatable; default: unlimited)",
        "[ACCOUNT:]AMOUNT",
        repeatable=True,
    ),
    Option(
        "fixed_pins",
        "--fixed-pin",
        ("fixed_pins",),
        _list(_fixed_pin),
        "always send this PIN to a number, prefix* or re:REGEX (repeatable)",
        "NUMBER_OR_PATTERN=PIN",
        repeatable=True,
    ),
    Option(
        "no_coverage",
        "--no-coverage",
        ("no_coverage",),
        _list(_country),
        "a country (ISO alpha-2) where POST /otp answers 403 no_coverage (repeatable)",
        "CC",
        repeatable=True,
    ),
    Option(
        "rate_limit",
        "--rate-limit",
        ("rate_limit",),
        _optional_positive_int,
        "requests per window per credential (default: no limit)",
        "N",
    ),
    Option(
        "rate_limit_window",
        "--rate-limit-window",
        ("rate_limit_window",),
        _positive_float,
        "rate-limit window, seconds (default 60)",
        "S",
    ),
    Option(
        "max_body_bytes",
        "--max-body-bytes",
        ("max_body_bytes",),
        _positive_int,
        "largest request body accepted (413 beyond)",
        "BYTES",
    ),
    Option(
        "max_connections",
        "--max-connections",
        ("max_connections",),
        _positive_int,
        "open connections at most; beyond, the oldest idle one is closed",
        "N",
    ),
    Option(
        "max_streams",
        "--max-streams",
        ("max_streams",),
        _positive_int,
        "long polls (wait=) and websockets open at once (the oldest long poll makes room)",
        "N",
    ),
    Option(
        "header_timeout",
        "--header-timeout",
        ("header_timeout",),
        _positive_float,
        "seconds a request line and its headers may take (408 beyond)",
        "S",
    ),
    Option(
        "body_timeout",
        "--body-timeout",
        ("body_timeout",),
        _positive_float,
        "seconds a request body may take (408 beyond)",
        "S",
    ),
    Option(
        "keepalive_timeout",
        "--keepalive-timeout",
        ("keepalive_timeout",),
        _positive_float,
        "seconds an idle keep-alive connection stays open",
        "S",
    ),
    Option(
        "max_wait",
        "--max-wait",
        ("max_wait",),
        _positive_float,
        "longest long-poll wait on /_sim/messages/latest and /_sim/requests/latest, and "
        "longest a scenario rule's latency or hang holds a request, seconds",
        "S",
    ),
    Option(
        "seed",
        "--seed",
        ("seed",),
        _seed,
        "seed for PINs and ids, 0 to 2^64-1: reproducible runs (not secure)",
        "N",
    ),
    Option(
        "clock_frozen",
        "--clock-frozen",
        ("clock", "frozen"),
        _bool,
        "start with the simulator clock frozen (true/false)",
        "BOOL",
    ),
    Option(
        "clock_start",
        "--clock-start",
        ("clock", "start"),
        _optional_text,
        "start the simulator clock at this ISO 8601 time",
        "ISO",
    ),
    Option(
        "callback_url",
        "--callback-url",
        ("callbacks", "url"),
        _url,
        "default callback URL for OTPs created without otpCallbackUrl",
        "URL",
    ),
    Option(
        "callback_secret",
        "--callback-secret",
        ("callbacks", "secret"),
        _optional_text,
        "sign callbacks (Standard Webhooks): whsec_<base64> or plain text",
        "SECRET",
    ),
    Option(
        "callback_batch_window",
        "--callback-batch-window",
        ("callbacks", "batch_window"),
        _non_negative_float,
        "seconds of simulator time in which events for one URL share a request (0: none)",
        "S",
    ),
    Option(
        "callback_timeout",
        "--callback-timeout",
        ("callbacks", "timeout"),
        _positive_float,
        "seconds one delivery attempt may take (and a clock jump waits for attempts)",
        "S",
    ),
    Option(
        "callback_retry_schedule",
        "--callback-retry-schedule",
        ("callbacks", "retry_schedule"),
        _schedule,
        "delay before each attempt, seconds on the simulator clock",
        "S,S,...",
    ),
    Option(
        "callback_concurrency",
        "--callback-concurrency",
        ("callbacks", "concurrency"),
        _positive_int,
        "callback attempts in flight at once",
        "N",
    ),
    Option(
        "callback_concurrency_per_receiver",
        "--callback-concurrency-per-receiver",
        ("callbacks", "concurrency_per_receiver"),
        _positive_int,
        "callback attempts in flight at once to one receiver (scheme, host and port)",
        "N",
    ),
    Option(
        "callback_max_pending",
        "--callback-max-pending",
        ("callbacks", "max_pending"),
        _positive_int,
        "deliveries allowed to wait in all; beyond, the largest backlog drops its newest",
        "N",
    ),
    Option(
        "callback_max_pending_per_receiver",
        "--callback-max-pending-per-receiver",
        ("callbacks", "max_pending_per_receiver"),
        _positive_int,
        "deliveries allowed to wait for one receiver; beyond, its new ones are dropped",
        "N",
    ),
    Option(
        "shutdown_grace",
        "--shutdown-grace",
        ("shutdown_grace",),
        _non_negative_float,
        "seconds in-flight callbacks get to finish on shutdown",
        "S",
    ),
    Option(
        "scenario",
        "--scenario",
        ("scenario",),
        _optional_text,
        "activate this scenario file's network rules from the start",
        "FILE",
    ),
    Option(
        "db",
        "--db",
        ("db",),
        _optional_text,
        "keep everything in this SQLite file (survives restarts); default: memory",
        "PATH",
    ),
    Option(
        "db_sync",
        "--db-sync",
        ("db_sync",),
        _db_sync,
        "normal (survives a crash) or full (also a power cut; slower)",
        "MODE",
    ),
    Option(
        "max_account_scenarios",
        "--max-account-scenarios",
        ("max_account_scenarios",),
        _positive_int,
        "at most this many accounts have a scenario, and as many a clock, of their own (?account=)",
        "N",
    ),
    Option(
        "max_account_rules",
        "--max-account-rules",
        ("max_account_rules",),
        _positive_int,
        "at most this many rules (and fixed PINs) in all accounts' own scenarios together",
        "N",
    ),
    Option(
        "max_messages",
        "--max-messages",
        ("max_messages",),
        _positive_int,
        "keep at most this many messages (and OTPs, and callbacks); oldest go first",
        "N",
    ),
    Option(
        "max_age",
        "--max-age",
        ("max_age",),
        _positive_float,
        "forget messages, OTPs and journal entries older than this, seconds of simulator time",
        "S",
    ),
    Option(
        "max_requests",
        "--max-requests",
        ("max_requests",),
        _positive_int,
        "keep at most this many entries in the request journal; oldest go first",
        "N",
    ),
    Option(
        "admin_token",
        "--admin-token",
        ("admin_token",),
        _optional_text,
        "require this token for /_sim/* and the inbox (required beyond 127.0.0.1)",
        "TOKEN",
    ),
    Option(
        "insecure_open",
        "--insecure-open",
        ("insecure_open",),
        _bool,
        "listen beyond 127.0.0.1 with no admin token (true/false; throwaway CI containers)",
        "BOOL",
    ),
    Option(
        "allowed_hosts",
        "--allowed-host",
        ("allowed_hosts",),
        _list(_allowed_host),
        "another host name that may reach the control API and inbox (repeatable; * any)",
        "NAME",
        repeatable=True,
    ),
    Option(
        "log_level",
        "--log-level",
        ("log_level",),
        _log_level,
        "info (a line per SMS, callback attempt and request answered with an error), "
        "debug (also every request), warning or error",
        "LEVEL",
    ),
    Option(
        "log_format",
        "--log-format",
        ("log_format",),
        _log_format,
        "text, or json: one JSON object per line",
        "FORMAT",
    ),
    Option(
        "log_pins",
        "--log-pins",
        ("log_pins",),
        _bool,
        "show PINs in logs (true/false; masked by default)",
        "BOOL",
    ),
)

_CONFIG_KEYS: dict[tuple[str, ...], Option] = {o.key: o for o in OPTIONS}
_SECTIONS = {o.key[0] for o in OPTIONS if len(o.key) > 1}


def _walk_config(doc: YamlDoc) -> dict[str, Any]:
    """Map a config file's keys to Settings fields, rejecting unknown keys."""
    if doc.data is None:
        return {}
    if not isinstance(doc.data, dict):
        raise doc.error((), "expected a mapping of settings at the top level")
    found: dict[str, Any] = {}
    top_keys = sorted({o.key[0] for o in OPTIONS})
    for key, value in doc.data.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise doc.error((key,), "expected a mapping")
            sub_keys = sorted(k[1] for k in _CONFIG_KEYS if k[0] == key)
            for sub, sub_value in value.items():
                option = _CONFIG_KEYS.get((key, sub))
                if option is None:
                    raise doc.error(
                        (key, sub), f"unknown key (expected one of: {', '.join(sub_keys)})"
                    )
                found[option.field] = _parse(option, sub_value, _prefix(doc, (key, sub)))
            continue
        option = _CONFIG_KEYS.get((key,))
        if option is None:
            raise doc.error((key,), f"unknown key (expected one of: {', '.join(top_keys)})")
        found[option.field] = _parse(option, value, _prefix(doc, (key,)))
    return found


def _prefix(doc: YamlDoc, path: tuple[str, ...]) -> str:
    return f"{doc.where(path)}: {'.'.join(path)}: "


def _parse(option: Option, value: Any, prefix: str) -> Any:
    """Parse one value; a bad one raises OtpsimError starting with ``prefix``."""
    try:
        return option.parse(value)
    except ValueError as exc:
        raise OtpsimError(f"{prefix}{exc}") from None


def load_settings(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_path: str | None = None,
) -> Settings:
    """Settings from defaults < config file < environment < command line.

    ``cli`` maps Settings field names to already-parsed values (None = not given).
    Raises OtpsimError with one line naming the source of a bad value.
    """
    env = os.environ if env is None else env
    cli = cli or {}
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}

    path = config_path or env.get("OTPSIM_CONFIG") or None
    doc: YamlDoc | None = None
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise OtpsimError(f"{path}: cannot read config file: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise OtpsimError(f"{path}:1: config file is not UTF-8 text") from None
        from otpsim.yamlutil import load_yaml

        doc = load_yaml(text, path)
        for name, value in _walk_config(doc).items():
            values[name] = value
            origin[name] = "config"

    for option in OPTIONS:
        raw = env.get(option.env)
        if raw is not None:
            values[option.field] = _parse(option, raw, f"{option.env}: ")
            origin[option.field] = "env"
        given = cli.get(option.field)
        if given is not None:
            values[option.field] = given
            origin[option.field] = "cli"

    settings = replace(Settings(), **values)
    _check(settings, origin, doc)
    return settings


def _source(option: Option, origin: Mapping[str, str], doc: YamlDoc | None) -> str:
    kind = origin.get(option.field)
    if kind == "config" and doc is not None:
        return _prefix(doc, option.key)
    if kind == "env":
        return f"{option.env}: "
    if kind == "cli":
        return f"{option.flag}: "
    return f"default {option.field}: "


def _check(settings: Settings, origin: Mapping[str, str], doc: YamlDoc | None) -> None:
    """Cross-field checks: defaults follow the API's own rules; safe network defaults."""
    by_field = {o.field: o for o in OPTIONS}
    if not is_loopback(settings.host) and not settings.admin_token and not settings.insecure_open:
        raise OtpsimError(
            _source(by_field["host"], origin, doc)
            + f"listening on {settings.host} (beyond this machine) needs --admin-token: the "
            "control API and the inbox show every PIN (or --insecure-open true, for a "
            "throwaway CI container only)"
        )
    from otpsim.domain.request import check_defaults  # the API's rules: phone numbers...

    try:
        check_defaults(settings.otp_defaults)
    except ProviderError as exc:
        # The default the API rule is about (the error names its parameter).
        names = {
            "from": "default_from",
            "template": "default_template",
            "ttl": "default_ttl",
            "maxAttempts": "default_max_attempts",
            "pinType": "default_pin_type",
            "pinLength": "default_pin_length",
        }
        field = names.get(exc.param or "", "default_template")
        raise OtpsimError(_source(by_field[field], origin, doc) + exc.message) from None
    if settings.clock_start is not None:
        from otpsim.clock import parse_iso

        try:
            parse_iso(settings.clock_start)
        except ValueError as exc:
            raise OtpsimError(_source(by_field["clock_start"], origin, doc) + str(exc)) from None


def is_loopback(host: str) -> bool:
    """True when ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
