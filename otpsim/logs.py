"""Logging: one line per request, per SMS and per callback attempt; text or JSON.

``--log-format json`` writes one JSON object per line (``ts``, ``level``, ``logger``,
``msg`` and the line's own fields), for log pipelines. PINs never appear in logs unless
``--log-pins`` is given.

Log lines carry text from requests (SMS text from templates, paths, sender ids). In the
text format every control character of a message is escaped (``\n``, ``\x1b``), so a
template cannot forge a log line or send escape sequences to a terminal; the JSON
format escapes them as JSON does.

Example::

    configure("info", "json")
    logging.getLogger("otpsim.access").info("GET /", extra={"fields": {"status": 200}})
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

PIN_MASK = "******"

_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def escape_controls(text: str) -> str:
    """``text`` on one line: control characters as visible escapes (``\\n``, ``\\x1b``)."""
    return text.translate(_ESCAPES) if not text.isprintable() else text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``2030-01-01 12:00:00 INFO otpsim.access: POST /otp 201 1.2ms``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def configure(level: str, fmt: str) -> None:
    """Send otpsim's logs to stderr in the given format (replacing earlier handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def mask_pin(text: str, pin: str, show: bool) -> str:
    """``text`` with the PIN hidden, unless ``show``."""
    return text if show or not pin else text.replace(pin, PIN_MASK)
