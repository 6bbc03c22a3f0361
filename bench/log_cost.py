"""What a log line costs the server, in CPU per line (its writer thread included).

    python bench/log_cost.py [--lines 50000]

stderr goes to /dev/null here; "logging" is what otpsim did before issue 18 (a
LogRecord, a formatter, the handler's lock and a write per line, on the event loop);
"sink" is the line formatted once and handed to the batching writer (logs.log_line).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from otpsim import logs

FIELDS = {
    "message_id": "7d1c5a2e-3f0b-4c1e-9a77-0c5b1e2f3a4b", "otp_id": "c25dfda0-240a-4de2",
    "account": "bench", "phone": "+33612345678", "text": "Your code is ******", "parts": 1,
    "encoding": "GSM-7",
}  # fmt: skip


def per_line(lines: int, emit: object) -> float:
    began = time.process_time()
    for _ in range(lines):
        emit()  # type: ignore[operator]
    logs.flush()
    return (time.process_time() - began) / lines * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000)
    args = parser.parse_args()
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    sms = logging.getLogger("otpsim.sms")
    for fmt in ("text", "json"):
        logs.configure("info", fmt)
        handler = logging.root.handlers[0]
        # Before: a plain StreamHandler with the same formatter, called through logging.
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(handler.formatter)
        logging.root.handlers[:] = [stream]
        before = per_line(
            args.lines,
            lambda: sms.info(
                "SMS to %s from %s: %s", "+33612345678", "OTPSIM", "Your code is ******",
                extra={"fields": FIELDS},
            ),
        )  # fmt: skip
        logging.root.handlers[:] = [handler]
        after = per_line(
            args.lines,
            lambda: logs.log_line(
                sms, logging.INFO, "SMS to +33612345678 from OTPSIM: Your code is ******", FIELDS
            ),
        )
        print(
            f"{fmt:>4}: logging + StreamHandler {before:5.1f} us/line, "
            f"sink {after:5.1f} us/line ({before / after:.1f} x cheaper)",
            file=sys.__stdout__,
        )


if __name__ == "__main__":
    main()
