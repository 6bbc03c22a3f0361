"""What the request journal costs a ``POST /otp``: the server's CPU time per request
(user + system, from /proc, so that other load on a shared machine hardly moves it) of
a real ``otpsim serve`` from this tree (every request journaled) against one from a
checkout without the journal (``--before``, default /work/main), in memory and with
``--db``. Loopback only.

    .venv/bin/python bench/hostile_journal.py [--before PATH] [--requests N] [--rounds R]

Each round sends N ``POST /otp`` from 8 concurrent keep-alive connections to each server
in turn (alternating); the figure is the best round's CPU microseconds per request of
each, and the journal's cost as a percentage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import aiohttp
from hostile_common import THIS_TREE, serve

CONCURRENCY = 8


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cost(base: str, pid: int, count: int) -> float:
    """The server's CPU microseconds per POST /otp, over ``count`` of them."""
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    headers = {"X-API-KEY": "bench"}
    body = {"phoneNumber": "+33612345678"}
    async with aiohttp.ClientSession(connector=connector) as session:
        left = count

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with session.post(f"{base}/otp", json=body, headers=headers) as resp:
                    await resp.read()
                    assert resp.status == 201, resp.status

        await asyncio.gather(*(worker() for _ in range(10)))  # warm-up
        left = count
        started = cpu_seconds(pid)
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return (cpu_seconds(pid) - started) / count * 1e6


def measure(before: Path, count: int, rounds: int, *args: str) -> tuple[float, float]:
    with (
        serve(*args, "--log-level", "warning", source=before) as old,
        serve(*args, "--log-level", "warning", source=THIS_TREE) as new,
    ):
        olds, news = [], []
        for _ in range(rounds):
            olds.append(asyncio.run(cost(old.base, old.proc.pid, count)))
            news.append(asyncio.run(cost(new.base, new.proc.pid, count)))
    return min(olds), min(news)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, default=Path("/work/main"))
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    if not (options.before / "otpsim").is_dir():
        sys.exit(f"{options.before}: not an otpsim checkout")
    for label, args in (("memory", ()), ("sqlite", ("--db", "bench.db"))):
        old, new = measure(options.before, options.requests, options.rounds, *args)
        print(
            f"POST /otp, {label}: server CPU without journal {old:,.0f} us/request, with "
            f"journal {new:,.0f} us/request: cost {(new - old) / old * 100:+.1f}% (best of "
            f"{options.rounds} rounds of {options.requests}, {CONCURRENCY} connections)"
        )


if __name__ == "__main__":
    main()
