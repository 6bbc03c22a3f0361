"""Per-credential growth: how much memory `otpsim serve` gains when a client asks about
thousands of credentials it made up (round 2, edge2 item 3).

    .venv/bin/python bench/hostile_credentials.py                         # this checkout
    .venv/bin/python bench/hostile_credentials.py --source ../main --source .  # before, after

For each source, a fresh `python -m otpsim serve --port 0` (PYTHONPATH=SOURCE) gets, on
one pipelined loopback connection, --count requests of each kind, every one with a new
random credential of --size characters, and the server's RSS (/proc) is printed after
each kind:

* sim:   GET /_sim/accounts/<name>/balance
* api:   GET /account/balance with X-API-KEY: <key>
* token: POST /oauth/token with Basic <client id>:x

Run it with --size 4000 (the attack: refused now) and --size 256 (the longest
accepted). Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import time
from pathlib import Path

from hostile_common import THIS_TREE, rss_mib, serve

BATCH = 200


def request(kind: str, size: int) -> str:
    name = os.urandom(size // 2 + 1).hex()[:size]
    if kind == "sim":
        return f"GET /_sim/accounts/{name}/balance HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    if kind == "api":
        return f"GET /account/balance HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: {name}\r\n\r\n"
    auth = base64.b64encode(f"{name}:x".encode()).decode()
    body = "grant_type=client_credentials"
    return (
        "POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Basic {auth}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )


def flood(port: int, kind: str, count: int, size: int) -> dict[int, int]:
    """Send ``count`` requests; how many answers of each status."""
    statuses: dict[int, int] = {}
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = sock.makefile("rb")
        for _ in range(0, count, BATCH):
            sock.sendall("".join(request(kind, size) for _ in range(BATCH)).encode())
            for _ in range(BATCH):
                status = int(reader.readline().split()[1])
                statuses[status] = statuses.get(status, 0) + 1
                length = 0
                while (line := reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                reader.read(length)
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", action="append", type=Path)
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--size", type=int, action="append")
    args = parser.parse_args()
    sources = args.source or [THIS_TREE]
    sizes = args.size or [4000, 256]
    for source in sources:
        for size in sizes:
            with serve(source=source) as server:
                time.sleep(0.3)
                before = rss_mib(server.proc.pid)
                row = [f"{source} size {size}: RSS {before:.0f} MiB"]
                for kind in ("sim", "api", "token"):
                    statuses = flood(server.port, kind, args.count, size)
                    row.append(f"{kind} {statuses} -> {rss_mib(server.proc.pid):.0f} MiB")
                print("; ".join(row), flush=True)


if __name__ == "__main__":
    main()
