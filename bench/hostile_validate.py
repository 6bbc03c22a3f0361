"""How large the problem report of a scenario full of mistakes is (bounded, in process).

Prints the size of the input and of the error message ``otpsim validate`` (and
``PUT /_sim/scenario``) would show, and how long checking took. Runs nothing else.

    python bench/hostile_validate.py
"""

from __future__ import annotations

import time

from otpsim.errors import OtpsimError
from otpsim.scenario.model import parse_scenario


def main() -> None:
    for steps in (7_000, 30_000):  # the most a 64 KiB PUT body holds; a 270 KB file
        text = "steps:\n" + "  - x: 1\n" * steps
        began = time.perf_counter()
        try:
            parse_scenario(text, "<request body>")
            message = ""
        except OtpsimError as exc:
            message = str(exc)
        took = time.perf_counter() - began
        print(
            f"{steps:>6} bad steps: input {len(text):>7,} bytes -> report "
            f"{len(message):>9,} bytes, {message.count(chr(10)) + 1} lines, {took:.2f}s"
        )


if __name__ == "__main__":
    main()
