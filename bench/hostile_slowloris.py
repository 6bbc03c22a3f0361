"""Slowloris against `otpsim serve`: how many slow connections it holds, and whether a
legitimate request is still answered while they are open.

    .venv/bin/python bench/hostile_slowloris.py                         # this checkout
    .venv/bin/python bench/hostile_slowloris.py --source ../main --source .  # before, after

Each source runs as `python -m otpsim serve --port 0` (PYTHONPATH=SOURCE) with an
open-file soft limit of --fd-limit (1,024 by default, a common default; the hard limit
is left as it is). The client opens --connections connections that each send a
partial request header and nothing more, then sends one ordinary GET /_sim/health on a
new connection and waits up to 5 s for the answer. Loopback only; bounded in count
and time.
"""

from __future__ import annotations

import argparse
import resource
import socket
import time
from collections.abc import Callable
from pathlib import Path

from hostile_common import THIS_TREE, serve

SLOW_HEAD = b"GET /_sim/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
LEGIT = b"GET /_sim/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def limiter(fd_limit: int) -> Callable[[], None]:
    """Set the open-file soft limit to ``fd_limit`` (in the server's process)."""

    def limit() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(fd_limit, hard), hard))

    return limit


def attack(port: int, count: int) -> tuple[list[socket.socket], int]:
    """Open up to ``count`` slow connections; (the sockets, how many failed to open)."""
    slow: list[socket.socket] = []
    failed = 0
    deadline = time.monotonic() + 60
    while len(slow) + failed < count and time.monotonic() < deadline:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=0.5)
            sock.sendall(SLOW_HEAD)
            slow.append(sock)
        except OSError:
            failed += 1
    return slow, failed


def legit(port: int) -> tuple[bool, float]:
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(LEGIT)
            answer = sock.recv(64)
        return answer.startswith(b"HTTP/1.1 200"), time.monotonic() - started
    except OSError:
        return False, time.monotonic() - started


def held(slow: list[socket.socket]) -> int:
    """How many of the slow connections the server still holds open."""
    count = 0
    for sock in slow:
        sock.setblocking(False)
        try:
            count += sock.recv(1) != b""  # an answer (408) counts as released below
        except BlockingIOError:
            count += 1  # nothing to read, not closed: held
        except OSError:
            pass
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", action="append", type=Path, default=None)
    parser.add_argument("--connections", type=int, default=1100)
    parser.add_argument("--fd-limit", type=int, default=1024)
    args = parser.parse_args()
    sources = args.source or [THIS_TREE]
    count = min(args.connections, 5000)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the client's own sockets
    print(f"{count} slow connections, server open-file soft limit {args.fd_limit}")
    print(f"{'source':<28} {'opened':>7} {'failed':>7} {'held':>6}  legitimate request")
    for source in sources:
        slow: list[socket.socket] = []
        with serve(source=source, preexec_fn=limiter(args.fd_limit), kill=True) as server:
            try:
                slow, failed = attack(server.port, count)
                time.sleep(1)
                answered, took = legit(server.port)
                still = held(slow)
                verdict = f"answered in {took:.2f}s" if answered else f"NOT answered ({took:.1f}s)"
                print(f"{source!s:<28} {len(slow):>7} {failed:>7} {still:>6}  {verdict}")
            finally:
                for sock in slow:
                    sock.close()


if __name__ == "__main__":
    main()
