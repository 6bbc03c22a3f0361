"""A clock jump waits for the callback attempts it makes due (so that ``advance()``
then ``callbacks()`` shows them), but a receiver that never answers cannot hold
``POST /_sim/clock``: the jump waits at most ``--callback-timeout`` in all, and the
API keeps serving everyone else meanwhile."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from support import FR, create

from otpsim.config import Settings

TIMEOUT = 1.0  # --callback-timeout: one attempt, and the most a jump waits in all
ATTEMPTS = 12  # due within the jump: waiting for each would take 12 s


@pytest.fixture
async def black_hole() -> Any:
    """A receiver that accepts connections and never answers; yields its hook URL."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/hook"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_black_hole_receiver_holds_a_clock_jump_at_most_the_timeout(
    make_client: Any, black_hole: str
) -> None:
    settings = Settings(
        callback_batch_window=0.0,
        callback_timeout=TIMEOUT,
        callback_retry_schedule=(0.0,) + (1.0,) * (ATTEMPTS - 1),
        callback_concurrency_per_receiver=ATTEMPTS,
        shutdown_grace=0.1,
    )
    client = await make_client(settings)
    otp = await create(client, ttl=60, otpCallbackUrl=black_hole)

    async def jump() -> tuple[int, float]:
        started = time.monotonic()
        resp = await client.post("/_sim/clock", json={"advance": 3600})
        return resp.status, time.monotonic() - started

    jumping = asyncio.create_task(jump())
    await asyncio.sleep(0.1)  # the jump is now held on the black hole's first attempt
    # Meanwhile another client is served at once (the jump holds no request but its own).
    other = await client.post(
        "/otp", json={"phoneNumber": FR}, headers={"X-API-KEY": "someone-else"}
    )
    assert other.status == 201
    assert not jumping.done()
    status, took = await jumping
    assert status == 200
    assert took < 5 * TIMEOUT  # generous: about one timeout, not one per attempt (12 s)
    # The attempts went on after the answer, each recorded at its due time.
    logged: list[Any] = []
    for _ in range(100):
        answer = await client.get("/_sim/callbacks", params={"otpId": otp["otpId"]})
        logged = (await answer.json())["callbacks"][0]["attempts"]
        if len(logged) >= 2:
            break
        await asyncio.sleep(0.1)
    assert [a["error"] for a in logged[:2]] == [f"timeout after {TIMEOUT:g}s"] * 2
    assert logged[0]["at"] == otp["dateExpires"]  # due at the expiry, in the jump
    assert logged[1]["at"] == logged[0]["nextRetryAt"]  # and its retry at its own time


async def test_jumps_in_a_row_never_extend_a_held_jumps_bound(
    make_client: Any, black_hole: str
) -> None:
    settings = Settings(
        callback_batch_window=0.0,
        callback_timeout=TIMEOUT,
        callback_concurrency_per_receiver=ATTEMPTS,
        shutdown_grace=0.1,
    )
    client = await make_client(settings)
    for ttl in range(60, 60 + ATTEMPTS):  # one black-hole attempt due at each second
        await create(client, ttl=ttl, otpCallbackUrl=black_hole)
    first = asyncio.create_task(client.post("/_sim/clock", json={"advance": 3600}))
    # Jumps keep coming for 4 bounds; each joins the pass under way (or starts its own)
    # and adds no waiting to the first one's.
    others = []
    for _ in range(10):
        await asyncio.sleep(0.4 * TIMEOUT)
        if first.done():
            break
        others.append(asyncio.create_task(client.post("/_sim/clock", json={"advance": 1})))
    assert first.done()  # it answered while the others kept coming
    assert [r.status for r in await asyncio.gather(first, *others)] == [200] * (1 + len(others))
