"""``otpsim serve`` with its store already at the retention cap: the steady state.

    python bench/prefilled.py COUNT [otpsim serve flags...]

Before serving, COUNT OTPs and their messages are written straight into the store
(seconds, not the minutes of load it takes to get there through the API), so the first
request already evicts the oldest. Everything else is ``otpsim serve`` as a user runs it.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from typing import Any

from otpsim import cli, logs
from otpsim.config import Settings, load_settings
from otpsim.domain.message import Message
from otpsim.domain.otp import Otp, OtpRequest
from otpsim.server import app as app_module
from otpsim.store.memory import MemoryStore
from otpsim.store.retention import Retention
from otpsim.store.sqlite import SqliteStore


def prefill(store: Any, count: int) -> None:
    now = time.time()  # the simulator's clock starts at the real time by default
    request = OtpRequest(
        "+33612345678", "FR", "OTPSIM", "Your code is {{pin}}", None, 300, 3, "numbers", 6,
        None, None,
    )  # fmt: skip
    for n in range(count):
        otp_id, message_id = str(uuid.uuid4()), str(uuid.uuid4())
        otp = Otp.issue(
            request, otp_id=otp_id, pin="123456", now=now, account="bench", cost=0.05, parts=1
        )
        message = Message(
            message_id, otp_id, "bench", "+33612345678", "FR", "OTPSIM",
            "Your code is 123456", "123456", 1, "GSM-7", now, seq=-count + n,
        )  # fmt: skip
        store.save_otp(otp)
        store.save_message(message)


def main() -> None:
    count = int(sys.argv[1])
    original = app_module.create_app

    def create_app(settings: Settings, **kwargs: Any) -> Any:
        retention = Retention(settings.max_messages, settings.max_age)
        store: MemoryStore | SqliteStore = (
            SqliteStore(settings.db, retention=retention, durability=settings.db_sync)
            if settings.db
            else MemoryStore(retention)
        )
        prefill(store, count)
        return original(settings, store=store, **kwargs)

    app_module.create_app = create_app  # type: ignore[assignment]
    parser = cli._parser()
    args = parser.parse_args(["serve", *sys.argv[2:]])
    settings = load_settings(cli=cli._cli_values(args), config_path=args.config)
    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(cli.serve(settings))


if __name__ == "__main__":
    main()
