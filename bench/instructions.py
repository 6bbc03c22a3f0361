"""Instructions per request: the A/B figure that other load on the machine cannot move.

On a shared machine CPU time per request moves by ~10 % between two runs of the same
code (cache and core contention), more than most single changes to the request path
save. This counts the instructions the server executes per request under valgrind
(callgrind, instrumentation switched on only while the measured requests run), which is the
same from run to run within a fraction of a percent.

    python bench/instructions.py [--requests 600] [--connections 10] [--path /otp] \\
        [--method POST] NAME=CHECKOUT ...

Each ``CHECKOUT`` is a directory whose ``otpsim`` package is run (``.`` for this one);
the server is ``otpsim serve`` with defaults on a loopback port, loaded by an asyncio
client in this process (keep-alive connections, one request at a time each) after a
warm-up. Prints instructions per request and the ratio to the first. Instructions are
not time (a cache miss costs more than an add), but a change that removes work shows
here without noise. Needs valgrind (``callgrind_control``); takes ~1 minute per spec.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BODY = b'{"phoneNumber": "+33612345678"}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request_bytes(method: str, path: str, port: int) -> bytes:
    body = BODY if method == "POST" and path == "/otp" else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-KEY: bench\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def load(port: int, raw: bytes | list[bytes], count: int, connections: int) -> None:
    """``count`` requests over ``connections`` keep-alive connections, one at a time each."""
    left = [count]

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = 0
        while left[0] > 0:
            left[0] -= 1
            writer.write(raw if isinstance(raw, bytes) else raw[i % len(raw)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
        writer.close()

    await asyncio.gather(*(one_connection() for _ in range(connections)))


async def created_ids(port: int, count: int) -> list[str]:
    """OTP ids to GET or verify (created before the measurement)."""
    import json

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ids = []
    for _ in range(count):
        writer.write(request_bytes("POST", "/otp", port))
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(x.split(b":", 1)[1])
            for x in head.split(b"\r\n")
            if x.lower().startswith(b"content-length:")
        )
        ids.append(json.loads(await reader.readexactly(length))["otpId"])
    writer.close()
    return ids


def measure(checkout: str, args: argparse.Namespace) -> float:
    """Instructions per request of ``otpsim serve`` (defaults) run from ``checkout``."""
    port = free_port()
    return measure_command(serve_command(port, args.slowdown), port, args, checkout_env(checkout))


def checkout_env(checkout: str) -> dict[str, str]:
    """The environment that runs ``checkout``'s otpsim (PYTHONSAFEPATH: ``python -m`` or
    ``-c`` would otherwise put the current directory, maybe another checkout, first)."""
    return dict(os.environ, PYTHONPATH=str(Path(checkout).resolve()), PYTHONSAFEPATH="1")


def serve_command(
    port: int, slowdown: float, *before: str, flags: tuple[str, ...] = ()
) -> list[str]:
    """``otpsim serve --port PORT [flags]`` with work that runs on a wall-clock cadence
    (the young collections of ``gcpolicy``, where the checkout has them) spaced
    ``slowdown`` times further apart: valgrind runs the server ~50 x slower, so a 0.1 s
    cadence would otherwise come ~50 x as often per request as it does outside valgrind.
    ``before``: Python statements run first (e.g. bench/ledger.py's patches)."""
    argv = ["serve", "--port", str(port), *flags]
    code = "; ".join(
        [
            "import sys",
            "import otpsim.gcpolicy as g",
            f"g.YOUNG_EVERY = getattr(g, 'YOUNG_EVERY', 0) * {slowdown}",
            *before,
            "from otpsim.cli import main",
            f"sys.exit(main({argv!r}))",
        ]
    )
    return [sys.executable, "-c", code]


def measure_command(
    command: list[str],
    port: int,
    args: argparse.Namespace,
    env: dict[str, str] | None = None,
    out: Path | None = None,
) -> float:
    """Instructions per request of the server that ``command`` starts on ``port``
    (run under callgrind, its output to ``out`` or a temporary file; ``args`` as this
    script's options)."""
    out = out or Path(tempfile.mkdtemp()) / "callgrind.out"
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
         *command],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300  # (a large --db file is opened first)
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.5)
        if args.path == "/otp":
            raws: bytes | list[bytes] = request_bytes(args.method, "/otp", port)
        else:
            ids = asyncio.run(created_ids(port, 50))
            raws = [request_bytes(args.method, f"/otp/{i}", port) for i in ids]
            if args.method == "POST":  # a wrong PIN each time: 400, until 3 are spent
                raws = [
                    r.replace(b"Content-Length: 0", b"Content-Length: 14") + b'{"pin":"0000"}'
                    for r in raws
                ]
        asyncio.run(load(port, raws, args.warmup, args.connections))
        subprocess.run(["callgrind_control", "-i", "on", str(server.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        asyncio.run(load(port, raws, args.requests, args.connections))
        subprocess.run(["callgrind_control", "-i", "off", str(server.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=300)
    totals = [int(x.split()[1]) for x in out.read_text().splitlines() if x.startswith("totals:")]
    if not totals or not totals[-1]:
        raise RuntimeError("no totals in the callgrind output")
    if args.keep:
        print(f"  (callgrind output: {out})", file=sys.stderr)
    return totals[-1] / args.requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--path", default="/otp", choices=["/otp", "/otp/{id}"])
    parser.add_argument("--method", default="POST", choices=["POST", "GET"])
    parser.add_argument("--keep", action="store_true", help="print the callgrind file's path")
    parser.add_argument(
        "--slowdown", type=float, default=50.0,
        help="valgrind's slowdown: wall-clock cadences are spaced this much further apart",
    )  # fmt: skip
    parser.add_argument("specs", nargs="+", metavar="NAME=CHECKOUT")
    args = parser.parse_args()
    first = None
    for spec in args.specs:
        name, _, checkout = spec.partition("=")
        per = measure(checkout or ".", args)
        first = first or per
        print(
            f"{name:>12}: {per / 1000:8.1f} k instructions/request ({first / per:.3f} x)",
            flush=True,
        )


if __name__ == "__main__":
    main()
