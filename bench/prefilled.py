"""``otpsim serve`` with its store already at the retention cap: the steady state.

    python bench/prefilled.py COUNT [otpsim serve flags...]

Before serving, COUNT OTPs and their messages are written straight into the store
(seconds, not the minutes of load it takes to get there through the API), so the first
request already evicts the oldest. Everything else is ``otpsim serve`` as a user runs it.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

from otpsim import cli, logs
from otpsim.config import load_settings
from otpsim.domain.message import Message
from otpsim.domain.otp import Otp, OtpRequest
from otpsim.server import app as app_module
from otpsim.server.keys import SIM


def prefill(sim: Any, count: int) -> None:
    store = sim._store
    now = sim._clock.time()
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

    def create_app(*args: Any, **kwargs: Any) -> Any:
        app = original(*args, **kwargs)
        prefill(app[SIM], count)
        return app

    app_module.create_app = create_app  # type: ignore[assignment]
    parser = cli._parser()
    args = parser.parse_args(["serve", *sys.argv[2:]])
    settings = load_settings(cli=cli._cli_values(args), config_path=args.config)
    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(cli.serve(settings))


if __name__ == "__main__":
    main()
