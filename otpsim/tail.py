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
from typing import Any, TextIO

import websockets

from otpsim.client import AsyncClient
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


async def tail(
    url: str,
    *,
    phone: str | None,
    out: TextIO,
    err: TextIO,
    color: bool,
    admin_token: str | None = None,
) -> None:
    """Follow the simulator's events forever, reconnecting with backoff after a drop."""
    wanted = None if phone is None else normalize_phone(phone)
    client = AsyncClient(url, admin_token=admin_token)
    backoff = 0.25
    while True:
        try:
            async for event in client.events():
                if event.get("type") == "hello":
                    backoff = 0.25
                    print(f"otpsim tail: following {url}", file=err, flush=True)
                line = format_event(event, wanted, color)
                if line is not None:
                    print(line, file=out, flush=True)
        except BrokenPipeError:
            raise  # our reader has gone (otpsim tail | head -1): not a lost connection
        except (OSError, websockets.exceptions.WebSocketException, json.JSONDecodeError) as exc:
            print(f"otpsim tail: disconnected ({exc}); retrying in {backoff:g}s", file=err)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


def use_color(out: TextIO) -> bool:
    return out.isatty() and "NO_COLOR" not in os.environ


def run(url: str, phone: str | None, color: bool | None, admin_token: str | None = None) -> None:
    out = sys.stdout
    highlight = use_color(out) if color is None else color
    asyncio.run(
        tail(url, phone=phone, out=out, err=sys.stderr, color=highlight, admin_token=admin_token)
    )
