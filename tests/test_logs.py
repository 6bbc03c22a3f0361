"""Log lines are cheap and never wait for stderr (issue 18)."""

from __future__ import annotations

import io
import logging
import threading

import pytest

from otpsim import logs


class StalledStream(io.StringIO):
    """A stderr nobody reads: every write waits until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.release.wait(10)
        return super().write(text)


def test_a_stalled_stderr_never_holds_the_caller_and_drops_are_counted() -> None:
    stream = StalledStream()
    sink = logs.LineSink(stream, limit=5)
    try:
        for n in range(20):  # returns at once although the stream is stuck
            sink.write(f"line {n}")
        assert not stream.getvalue()
    finally:
        stream.release.set()
        sink.close()
    written = stream.getvalue().splitlines()
    assert written[0] == "line 0"
    assert written[-1].endswith("log lines dropped (stderr not read fast enough)")
    assert 5 <= len(written) <= 7  # the limit, the writer's first batch, the count


def test_the_fast_line_reads_like_a_logging_record(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "text")
    try:
        logs.log_line(logging.getLogger("otpsim.sms"), logging.INFO, "SMS to +33\n1", {})
        logging.getLogger("otpsim.sms").info("by %s", "logging")
        logs.flush()
        fast, slow = capsys.readouterr().err.splitlines()
    finally:
        logging.getLogger().handlers.clear()
    assert fast.split(" ", 2)[2] == "INFO otpsim.sms: SMS to +33\\n1"
    assert slow.split(" ", 2)[2] == "INFO otpsim.sms: by logging"
    assert len(fast.split(" ")[1]) == len(slow.split(" ")[1])  # HH:MM:SS,mmm both


def test_another_listener_gets_the_record(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logs.log_line(logging.getLogger("otpsim.sms"), logging.INFO, "SMS", {"otp_id": "x"})
    assert [(r.getMessage(), r.fields) for r in caplog.records] == [("SMS", {"otp_id": "x"})]  # type: ignore[attr-defined]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_text_line_without_fields_reads_as_log_line_wrote_it(
    capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """``text_line`` writes the text format's line itself (no fields built) and declines
    the JSON format, whose line needs them: the caller then calls ``log_line``."""
    sms = logging.getLogger("otpsim.sms")
    logs.configure("info", fmt)
    try:
        written = logs.text_line(sms, logging.INFO, "SMS to +33\n1")
        logs.log_line(sms, logging.INFO, "SMS to +33\n1", {"otp_id": "x"})
        logs.flush()
        lines = capsys.readouterr().err.splitlines()
    finally:
        logging.getLogger().handlers.clear()
    assert written is (fmt == "text")
    if fmt == "text":
        short, full = lines
        assert short.split(" ", 2)[2] == full.split(" ", 2)[2] == "INFO otpsim.sms: SMS to +33\\n1"
    else:
        [full] = lines
        assert '"otp_id": "x"' in full


def test_a_text_line_is_declined_when_another_handler_listens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        assert not logs.text_line(logging.getLogger("otpsim.sms"), logging.INFO, "SMS")
    assert not caplog.records  # the caller logs it, with its fields
