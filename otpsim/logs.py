"""Logging: one line per request, per SMS and per callback attempt; text or JSON.

``--log-format json`` writes one JSON object per line (``ts``, ``level``, ``logger``,
``msg`` and the line's own fields), for log pipelines. PINs never appear in logs unless
``--log-pins`` is given.

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
