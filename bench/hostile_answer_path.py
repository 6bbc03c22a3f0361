"""What a refused request costs, before and after the answer path's round (issue 18, r5).

The middleware now runs as each route's handler, and a request that no route takes
reaches it through the router's ``resolve``, which builds a route for each refusal
(``server/routing.py``). A client sending only such requests (a scanner's 404s, wrong
methods) must not cost the server more per request than before. This counts the
server's instructions per request under callgrind (``bench/instructions.py``'s
method: loopback, keep-alive connections, a warm-up, then the measured requests) for a
404 and a 405, from each checkout given.

    python bench/hostile_answer_path.py [--requests 600] NAME=CHECKOUT ...

Loopback only; each measurement starts and stops its own ``otpsim serve``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import instructions

REFUSED = {
    "GET /nowhere (404)": ("GET", "/nowhere"),
    "PUT /otp (405)": ("PUT", "/otp"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("specs", nargs="+", metavar="NAME=CHECKOUT")
    args = parser.parse_args()
    args.path, args.method, args.keep = "/otp", "GET", False
    plain = instructions.request_bytes
    for label, (method, path) in REFUSED.items():

        def refused(_method: str, _path: str, port: int, m: str = method, p: str = path) -> bytes:
            return plain(m, p, port)

        instructions.request_bytes = refused  # what measure() sends
        first = None
        for spec in args.specs:
            name, _, checkout = spec.partition("=")
            per = instructions.measure(checkout or ".", args)
            first = first or per
            print(f"{label:>20} {name:>8}: {per / 1000:8.1f} k instructions/request "
                  f"({first / per:.3f} x)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
