"""Helpers for tests: constants and small assertions on the provider's wire shapes."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import resource
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from otpsim.clock import parse_iso
from otpsim.engine.simulator import Simulator
from otpsim.server.keys import SIM

START = parse_iso("2030-01-01T12:00:00Z")
KEY = {"X-API-KEY": "test-key"}
FR = "+33612345678"


def sim_of(client: TestClient[Any, Any]) -> Simulator:
    return client.app[SIM]  # type: ignore[index]


async def create(client: TestClient[Any, Any], **body: Any) -> dict[str, Any]:
    """POST /otp with sensible defaults; asserts 201 and returns the OTP object."""
    payload = {"phoneNumber": FR, **body}
    resp = await client.post("/otp", json=payload, headers=KEY)
    assert resp.status == 201, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def pin_of(client: TestClient[Any, Any], otp_id: str) -> str:
    resp = await client.get("/_sim/messages/latest", params={"otpId": otp_id})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["pin"]  # type: ignore[no-any-return]


async def expect_error(resp: Any, status: int, type_: str, code: int) -> dict[str, Any]:
    """Assert the provider's error shape with exact status, type and code."""
    body = await resp.json()
    assert resp.status == status, body
    assert set(body) == {"error"}, body
    err = body["error"]
    assert (err["type"], err["code"]) == (type_, code), err
    assert err["message"], err
    assert err["uri"].startswith("https://"), err
    return err  # type: ignore[no-any-return]


def otpsim_command() -> list[str]:
    script = Path(sys.executable).with_name("otpsim")
    return [str(script)] if script.exists() else [sys.executable, "-m", "otpsim"]


def read_until(
    proc: subprocess.Popen[str], pattern: str, timeout: float = 20, *, stream: str = "stdout"
) -> re.Match[str]:
    """Read the process's stdout (or stderr) until a line matches; fail with what it printed.

    A thread does the blocking reads, so a silent process cannot hang the test.
    """
    source = proc.stdout if stream == "stdout" else proc.stderr
    assert source is not None
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in source:
            lines.put(line)
            if re.search(pattern, line):
                return

    threading.Thread(target=pump, daemon=True).start()
    seen = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"no line matching {pattern!r}; output was: {''.join(seen)!r}")


def call(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """A JSON request to a live server (urllib: no event loop needed); (status, body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def launch(
    folder: Path,
    *args: str,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """Start ``otpsim serve --port 0 ARGS`` in ``folder``; (process, base URL).
    ``preexec_fn``: e.g. ``limited``, for a server that would blow up on unfixed code."""
    proc = subprocess.Popen(
        [*otpsim_command(), "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=folder,
        env={**os.environ, **(env or {})},
        preexec_fn=preexec_fn,
    )
    # The text banner's "API:" line, or the JSON banner's "api" (--log-format json).
    address = r'(?:API:\s+|"api": ")(http://127\.0\.0\.1:\d+)'
    return proc, read_until(proc, address).group(1)


LIMIT = 1024**3  # address space for subprocesses that would blow up on unfixed code


def limited() -> None:
    """In a subprocess: cap its address space at ``LIMIT``, so a regression that would
    eat the machine's memory fails the test instead."""
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def run_limited(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``otpsim ARGS`` in ``cwd`` under ``limited`` and ``timeout``; capture its output."""
    return subprocess.run(
        [*otpsim_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        preexec_fn=limited,
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one line an ``otpsim`` command that exited 2 printed on stderr."""
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def put_scenario(base: str, body: str | bytes, timeout: float) -> tuple[int, Any]:
    """``PUT /_sim/scenario`` to a live server; (status, JSON body)."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(base + "/_sim/scenario", data=data, method="PUT")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


async def eventually(check: Callable[[], Any], within: float = 5.0) -> None:
    """Poll until ``check()`` is truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill and reap a launched server, closing its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def raw_http(host: str, port: int, data: bytes, *, timeout: float = 5.0) -> tuple[int, bytes]:
    """Send raw bytes to a live server (for requests an HTTP client library would refuse
    to send); returns (status, whole response bytes). Reads until the server closes or
    ``timeout`` passes with nothing more; status 0 if no status line came back."""
    import socket

    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        except TimeoutError:
            pass
    raw = b"".join(chunks)
    match = re.match(rb"HTTP/1\.[01] (\d{3})", raw)
    return (int(match.group(1)) if match else 0), raw


def _complete(raw: bytes) -> bool:
    """Whether a response with a Content-Length has all of its body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return match is not None and len(body) >= int(match.group(1))
