"""``otpsim tail``: the live feed in a terminal, one line per SMS, for headless CI logs.

Example output::

    03:04:05  +33612345678  ACME  "Your ACME code is 482913"  PIN 482913  [1 part, GSM-7]
    03:04:09  +33612345678  OTP 5b0c2d1e VERIFIED (attempts 0/3)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any, TextIO

import websockets

from otpsim.client import websocket_url
from otpsim.domain.numbers import normalize_phone

PIN_STYLE = "\x1b[1;30;43m"  # bold, black on yellow
RESET_STYLE = "\x1b[0m"


def printable(text: str) -> str:
    """Text safe for a terminal: control characters (escape sequences too) shown escaped."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def format_event(event: dict[str, Any], phone: str | None, color: bool) -> str | None:
    """One line for an event worth a line (an SMS, a final status, a reset), else None."""
    kind, data = event.get("type"), event.get("data") or {}
    if kind == "reset":
        return "--- reset ---"
    if kind not in ("message.delivered", "message.undelivered", "otp.updated"):
        return None
    if phone is not None and data.get("phoneNumber") != phone:
        return None
    if kind == "otp.updated":
        if data.get("status") == "PENDING":
            return None
        return (
            f"{data['dateUpdated'][11:19]}  {data['phoneNumber']}  OTP {data['otpId'][:8]} "
            f"{data['status']} (attempts {data['attempts']}/{data['maxAttempts']})"
        )
    if kind == "message.undelivered":
        return (
            f"{data['createdAt'][11:19]}  {data['phoneNumber']}  {printable(data['from'])}  "
            "UNDELIVERED: the SMS never reached the phone"
        )
    pin = printable(data["pin"])
    shown_pin = f"{PIN_STYLE}{pin}{RESET_STYLE}" if color else pin
    parts = data["parts"]
    return (
        f"{data['deliveredAt'][11:19]}  {data['phoneNumber']}  {printable(data['from'])}  "
        f'"{printable(data["text"])}"  PIN {shown_pin}  '
        f"[{parts} part{'' if parts == 1 else 's'}, {data['encoding']}]"
    )


DEFAULT_RETRY_FOR = 10.0  # seconds of trying to reconnect before giving up
GOING_AWAY = 1001  # the close code of a simulator that is stopping


async def tail(
    url: str,
    *,
    phone: str | None,
    out: TextIO,
    err: TextIO,
    color: bool,
    admin_token: str | None = None,
    retry_for: float = DEFAULT_RETRY_FOR,
) -> int:
    """Follow the simulator's events, reconnecting with backoff after a drop; returns
    the exit code.

    Gives up (one line on ``err``, 1) when ``retry_for`` seconds of trying have not
    brought the connection back. With ``retry_for`` 0, a simulator that stops (a 1001
    going-away close) ends it at once (0); any other drop is given up at once (1).
    """
    wanted = None if phone is None else normalize_phone(phone)
    target = websocket_url(url)
    headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else None
    backoff = 0.25
    lost_at: float | None = None  # when the connection was lost (or first failed)
    while True:
        try:
            async with websockets.connect(
                target, max_size=2**22, additional_headers=headers, open_timeout=5
            ) as ws:
                async for raw in ws:
                    event = json.loads(raw)
                    if event.get("type") == "hello":
                        backoff, lost_at = 0.25, None
                        print(f"otpsim tail: following {url}", file=err, flush=True)
                    line = format_event(event, wanted, color)
                    if line is not None:
                        print(line, file=out, flush=True)
            code = ws.close_code
            if code == GOING_AWAY and retry_for <= 0:
                print("otpsim tail: the simulator stopped (1001 going away)", file=err)
                return 0
            why = f"closed by the simulator ({code}{' going away' if code == GOING_AWAY else ''})"
        except BrokenPipeError:
            raise  # our reader has gone (otpsim tail | head -1): not a lost connection
        except (OSError, websockets.exceptions.WebSocketException, json.JSONDecodeError) as exc:
            why = str(exc) or type(exc).__name__
        now = time.monotonic()
        lost_at = now if lost_at is None else lost_at
        left = retry_for - (now - lost_at)
        if left <= 0:
            tried = f"could not reconnect within {retry_for:g}s" if retry_for > 0 else "no retry"
            print(
                f"otpsim tail: error: lost {url}: {why}; {tried} (--retry-for)",
                file=err,
                flush=True,
            )
            return 1
        wait = min(backoff, left)
        print(f"otpsim tail: disconnected ({why}); retrying in {wait:g}s", file=err, flush=True)
        await asyncio.sleep(wait)
        backoff = min(backoff * 2, 5.0)


def use_color(out: TextIO) -> bool:
    return out.isatty() and "NO_COLOR" not in os.environ


def run(
    url: str,
    phone: str | None,
    color: bool | None,
    admin_token: str | None = None,
    retry_for: float = DEFAULT_RETRY_FOR,
) -> int:
    """``otpsim tail``; returns the exit code."""
    out = sys.stdout
    highlight = use_color(out) if color is None else color
    return asyncio.run(
        tail(
            url,
            phone=phone,
            out=out,
            err=sys.stderr,
            color=highlight,
            admin_token=admin_token,
            retry_for=retry_for,
        )
    )
