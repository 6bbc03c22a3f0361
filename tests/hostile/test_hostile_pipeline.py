"""Pipelined requests and bodies in pieces on the real connection handler (EdgeHandler):
every request answered, in order, whatever aiohttp's flow control held back."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from otpsim.config import Settings
from otpsim.server.app import create_app
from otpsim.server.edge import EdgeRunner

BODY = b'{"phoneNumber": "+33612345678"}'


def post(body: bytes = BODY) -> bytes:
    return (
        b"POST /otp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: pipe\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    ) + body


@pytest.fixture
async def port() -> AsyncIterator[int]:
    settings = Settings(rate_limit=None)
    runner = EdgeRunner(
        create_app(settings), settings, cap=64, handle_signals=False, access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1]
    await runner.cleanup()


async def answers(reader: asyncio.StreamReader, count: int) -> list[tuple[int, bytes]]:
    got = []
    for _ in range(count):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = int(head.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
        got.append((status, await asyncio.wait_for(reader.readexactly(length), 10)))
    return got


async def test_forty_pipelined_requests_are_all_answered_in_order(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # More than aiohttp's message queue (32): the parser keeps a tail and pauses.
    bodies = [b'{"phoneNumber": "+336123456%02d"}' % i for i in range(40)]
    writer.write(b"".join(post(b) for b in bodies))
    got = await answers(reader, 40)
    assert [s for s, _ in got] == [201] * 40
    numbers = [re.search(rb'"phoneNumber":"([^"]+)"', b).group(1) for _, b in got]  # type: ignore[union-attr]
    assert numbers == [b"+336123456%02d" % i for i in range(40)]
    writer.close()
    await writer.wait_closed()


async def test_a_body_in_pieces_then_more_requests(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = post(b'{"phoneNumber": "+33612345678", "pad": "' + b"x" * 30000 + b'"}')
    for start in range(0, len(request), 7001):  # headers, then the body in pieces
        writer.write(request[start : start + 7001])
        await writer.drain()
        await asyncio.sleep(0.01)
    [(status, _)] = await answers(reader, 1)
    assert status == 201
    writer.write(post() + post())
    assert [s for s, _ in await answers(reader, 2)] == [201, 201]
    writer.close()
    await writer.wait_closed()
