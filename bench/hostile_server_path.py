"""The per-request constructions the server's path (round 4, second pass) cut down, each
old way beside the new one, in-process (no server, no network): nanoseconds per call,
the lowest of 5 runs (the least disturbed by other load on the machine).

    python bench/hostile_server_path.py

* a frozen dataclass (``Caller`` before) vs the same fields not frozen (``Caller`` now):
  a frozen ``__init__`` sets each field through ``object.__setattr__``;
* ``web.Response`` with its ``Content-Type`` in a dict (before) vs from a
  ``CIMultiDict`` template (now, ``server/http.py``);
* the request id by ``f"{n:032x}"`` (before) vs ``n.to_bytes(16).hex()`` (now): the same
  32 digits.

The whole request's figure is ``bench/instructions.py`` (instructions per POST /otp).
"""

from __future__ import annotations

import random
import timeit
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from otpsim.engine import Caller


@dataclass(frozen=True, slots=True)
class FrozenCaller:  # Caller as it was
    address: str | None
    api_key: str | None = None
    bearer: str | None = None
    token_request: bool = False
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    problem: Any = None


BODY = b"x" * 294
TEMPLATE: CIMultiDict[str] = CIMultiDict({"Content-Type": "application/json; charset=utf-8"})
PAIRS = [
    (
        "Caller, frozen (before)",
        'FrozenCaller("127.0.0.1", api_key="k", bearer=None)',
    ),
    ("Caller, not frozen (now)", 'Caller("127.0.0.1", api_key="k", bearer=None)'),
    (
        "Response, headers from a dict (before)",
        'web.Response(body=BODY, status=201, headers={"Content-Type": '
        '"application/json; charset=utf-8"})',
    ),
    (
        "Response, headers from a template (now)",
        "web.Response(body=BODY, status=201, headers=TEMPLATE)",
    ),
    ("request id, f-string (before)", 'f"{random.getrandbits(128):032x}"'),
    ("request id, to_bytes().hex() (now)", "random.getrandbits(128).to_bytes(16).hex()"),
]


def main() -> None:
    number = 100_000
    names = {
        "FrozenCaller": FrozenCaller,
        "Caller": Caller,
        "web": web,
        "BODY": BODY,
        "TEMPLATE": TEMPLATE,
        "random": random,
    }
    for label, stmt in PAIRS:
        best = min(timeit.repeat(stmt, globals=names, number=number, repeat=5)) / number
        print(f"{label:42} {best * 1e9:7.0f} ns")


if __name__ == "__main__":
    main()
