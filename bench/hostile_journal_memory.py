"""What 2,000 journaled requests with a small but object-heavy body cost in memory: the
RSS of a real ``otpsim serve`` (in memory, default ``--max-requests``) before and after
2,000 ``POST /nope`` without credentials, each a 4,042-byte body ``{"x":[{},{},...]}``
(1,345 empty objects). Loopback only, bounded (2,000 requests, 20 at a time).

    .venv/bin/python bench/hostile_journal_memory.py [--source PATH] [--requests N]

``--source``: a checkout to run the server from (e.g. /work/main, for the figure before
a change); this tree by default.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import aiohttp
from hostile_common import THIS_TREE, rss_mib, serve

BODY = b'{"x":[' + b",".join([b"{}"] * 1345) + b"]}"


async def flood(base: str, count: int) -> dict[int, int]:
    codes: dict[int, int] = {}
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        gate = asyncio.Semaphore(20)

        async def one() -> None:
            async with gate, session.post(f"{base}/nope", data=BODY, headers=headers) as r:
                await r.read()
                codes[r.status] = codes.get(r.status, 0) + 1

        await asyncio.gather(*(one() for _ in range(count)))
    return codes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=Path, default=THIS_TREE)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with serve("--log-level", "warning", source=args.source) as server:
        asyncio.run(flood(server.base, 50))  # warm-up: imports, first allocations
        before = rss_mib(server.proc.pid)
        codes = asyncio.run(flood(server.base, args.requests))
        after = rss_mib(server.proc.pid)
    per = (after - before) * 1024 * 1024 / args.requests
    print(
        f"{args.source}: body {len(BODY)} bytes, {args.requests} requests {codes}: "
        f"RSS {before:.1f} -> {after:.1f} MiB (+{after - before:.1f} MiB, "
        f"~{per / 1024:.1f} KiB per entry)"
    )


if __name__ == "__main__":
    main()
