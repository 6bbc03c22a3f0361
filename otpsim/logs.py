"""Logging: one line per request, per SMS and per callback attempt; text or JSON.

``--log-format json`` writes one JSON object per line (``ts``, ``level``, ``logger``,
``msg`` and the line's own fields), for log pipelines. PINs never appear in logs unless
``--log-pins`` is given.

Log lines carry text from requests (SMS text from templates, paths, sender ids). In the
text format every control character of a message is escaped (``\n``, ``\x1b``), so a
template cannot forge a log line or send escape sequences to a terminal; the JSON
format escapes them as JSON does.

Lines are cheap and never block the event loop: ``configure`` sends every record to a
:class:`LineSink`, which a writer thread drains to stderr in batches (one write per
batch, within ~20 ms), so a slow or stalled reader of stderr slows nobody down (past
100,000 waiting lines, new ones are dropped and counted). The per-request and per-SMS
lines skip the logging machinery when nothing else listens (:func:`log_line`): the
line is formatted once, straight from its fields, and appended to the sink (in the text
format, :func:`text_line`, without building the fields at all).

Which lines: one per SMS (``otpsim.sms``) and per callback attempt at info; one per
request (``otpsim.access``) at info only when it was answered with an error (4xx or
5xx), and for every request at debug (``--log-level debug``). See
docs/configuration.md.

Example::

    configure("info", "json")
    logging.getLogger("otpsim.access").info("GET /", extra={"fields": {"status": 200}})
"""

from __future__ import annotations

import atexit
import json
import logging
import sys
import threading
import time
from collections import deque
from typing import IO, Any

PIN_MASK = "******"

_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def escape_controls(text: str) -> str:
    """``text`` on one line: control characters as visible escapes (``\\n``, ``\\x1b``)."""
    return text.translate(_ESCAPES) if not text.isprintable() else text


def _iso_ms(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + (
        f".{int((created - int(created)) * 1000):03d}Z"
    )


def _json_line(line: dict[str, Any]) -> str:
    # The standard library's spacing (``"key": value``), which readers of the banner
    # match; JSON logs are not the default, so orjson's few microseconds are not worth
    # a second format.
    return json.dumps(line, ensure_ascii=False, default=str)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _iso_ms(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _json_line(line)


class TextFormatter(logging.Formatter):
    """``2030-01-01 12:00:00,123 INFO otpsim.access: POST /otp 201 1.2ms``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


class LineSink:
    """Lines for a stream, written by a daemon thread in batches: ``write`` only appends
    to a deque (and wakes the writer when it was idle), so the caller never waits for
    the stream. Past ``limit`` waiting lines new ones are dropped, and the writer says
    how many. :meth:`flush` writes what is waiting, now (at exit, in tests)."""

    GATHER = 0.02  # seconds the writer waits, once woken, for more lines to batch

    def __init__(self, stream: IO[str], limit: int = 100_000) -> None:
        self.stream = stream
        self.limit = limit
        self._lines: deque[str] = deque()
        self._dropped = 0
        self._wake = threading.Event()
        self._lock = threading.Lock()  # one drain at a time (the writer, or flush)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="otpsim-log", daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        lines = self._lines
        if len(lines) >= self.limit:
            self._dropped += 1
            return
        idle = not lines
        lines.append(line)
        if idle:
            self._wake.set()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            time.sleep(self.GATHER)
            self.flush()

    def flush(self) -> None:
        with self._lock:
            lines, batch = self._lines, []
            while lines:
                batch.append(lines.popleft())
            if self._dropped:
                batch.append(
                    f"otpsim: {self._dropped} log lines dropped (stderr not read fast enough)"
                )
                self._dropped = 0
            if not batch:
                return
            try:
                self.stream.write("\n".join(batch) + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # a closed or broken stderr: nothing to tell
                pass

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self.flush()


class SinkHandler(logging.Handler):
    """A logging handler that formats in the caller and leaves the writing to a sink."""

    def __init__(self, sink: LineSink) -> None:
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink.write(self.format(record))
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.sink.flush()


_handler: SinkHandler | None = None
_json = False


def configure(level: str, fmt: str) -> None:
    """Send otpsim's logs to stderr in the given format (replacing earlier handlers)."""
    global _handler, _json
    if _handler is not None:
        _handler.sink.close()
    handler = SinkHandler(LineSink(sys.stderr))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    _handler, _json = handler, fmt == "json"


def flush() -> None:
    """Write the lines still waiting (the writer does within ~20 ms anyway)."""
    if _handler is not None:
        _handler.sink.flush()


atexit.register(flush)

_second = -1
_stamp = ""


def _asctime(now: float) -> str:
    """The text format's time (``2030-01-01 12:00:00,123``, local), cached per second."""
    global _second, _stamp
    second = int(now)
    if second != _second:
        _second, _stamp = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    return f"{_stamp},{int((now - second) * 1000):03d}"


_LEVEL_NAMES = {level: logging.getLevelName(level) for level in (10, 20, 30, 40, 50)}


def _fast_handler(logger: logging.Logger) -> SinkHandler | None:
    """The handler :func:`configure` installed when it is the only listener of ``logger``'s
    lines (a line may then skip the logging machinery), else None."""
    handler = _handler
    if handler is None or logger.handlers or logger.filters or handler.filters:
        return None
    handlers = logging.root.handlers
    return handler if len(handlers) == 1 and handlers[0] is handler else None


def _text(logger: logging.Logger, level: int, msg: str, now: float) -> str:
    name = _LEVEL_NAMES.get(level) or logging.getLevelName(level)
    return f"{_asctime(now)} {name} {logger.name}: {escape_controls(msg)}"


def text_line(logger: logging.Logger, level: int, msg: str) -> bool:
    """Write ``msg`` as :func:`log_line` would when its fields are not needed (the text
    format, nothing but :func:`configure`'s handler listening) and say so; False: the
    caller calls :func:`log_line` with its fields. A caller whose fields cost a dict
    (the SMS line) builds them only then. The caller has checked ``isEnabledFor``."""
    handler = _handler  # as _fast_handler, inline: once per SMS
    if _json or handler is None or logger.handlers or logger.filters or handler.filters:
        return False
    handlers = logging.root.handlers
    if len(handlers) != 1 or handlers[0] is not handler:
        return False
    handler.sink.write(_text(logger, level, msg, time.time()))
    return True


def log_line(logger: logging.Logger, level: int, msg: str, fields: dict[str, Any]) -> None:
    """``logger.log(level, msg, extra={"fields": fields})``, cheaply: when the only
    listener is the handler :func:`configure` installed, the line is formatted here and
    handed to its sink (no LogRecord, no formatter, no lock); otherwise through
    ``logging``. The caller has checked ``logger.isEnabledFor(level)``."""
    handler = _fast_handler(logger)
    if handler is None:
        logger.log(level, "%s", msg, extra={"fields": fields})
        return
    now = time.time()
    if _json:
        name = _LEVEL_NAMES.get(level) or logging.getLevelName(level)
        line = {"ts": _iso_ms(now), "level": name.lower(), "logger": logger.name, "msg": msg}
        line.update(fields)
        handler.sink.write(_json_line(line))
    else:
        handler.sink.write(_text(logger, level, msg, now))


def mask_pin(text: str, pin: str, show: bool) -> str:
    """``text`` with the PIN hidden, unless ``show``."""
    return text if show or not pin else text.replace(pin, PIN_MASK)
