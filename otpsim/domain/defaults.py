"""The application's defaults for ``POST /otp`` fields a request leaves out.

A plain value with no imports, so that ``config.Settings`` can name it without loading
the domain (phone numbers, PIN alphabets, SMS encoding).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OtpDefaults:
    """The application's defaults for fields a request leaves out (set in Settings)."""

    sender: str = "OTPSIM"
    template: str = "Your verification code is {{pin}}"
    ttl: int = 300
    max_attempts: int = 3
    pin_type: str = "numbers"
    pin_length: int = 6
