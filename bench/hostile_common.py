"""What the bench/hostile_*.py scripts share: a real ``otpsim serve`` on 127.0.0.1 port 0
(optionally from another checkout), the server's memory from /proc, ``PUT
/_sim/scenario``, and for the in-process callback figures a healthy receiver and an app
with its dispatcher running. Loopback only.

The scripts import it as ``hostile_common`` (``python bench/hostile_x.py`` puts bench/ on
the import path).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

THIS_TREE = Path(__file__).resolve().parents[1]
BANNER = re.compile(r"API:\s+(http://127\.0\.0\.1:(\d+))")


@dataclass
class Server:
    proc: subprocess.Popen[str]
    base: str  # http://127.0.0.1:PORT
    port: int
    folder: Path  # its working directory


@contextmanager
def serve(
    *args: str,
    source: Path | None = None,
    folder: Path | None = None,
    preexec_fn: Callable[[], None] | None = None,
    kill: bool = False,
) -> Iterator[Server]:
    """Run ``python -m otpsim serve --host 127.0.0.1 --port 0 ARGS`` until the block ends.

    ``source``: a checkout put first on PYTHONPATH (a before/after comparison); by default
    the interpreter's own otpsim. ``folder``: its working directory (a temporary one,
    removed afterwards, by default; a temporary folder means no checkout in the working
    directory shadows PYTHONPATH). ``kill``: end it with SIGKILL rather than SIGTERM (a
    server holding many connections need not shut down gracefully)."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source.resolve())
    with tempfile.TemporaryDirectory(prefix="otpsim-bench-") as temporary:
        cwd = folder or Path(temporary)
        proc = subprocess.Popen(
            [sys.executable, "-m", "otpsim", "serve", "--host", "127.0.0.1", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=cwd,
            env=env,
            preexec_fn=preexec_fn,
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                match = BANNER.search(line)
                if match:
                    break
            else:
                raise RuntimeError(f"{source or 'otpsim'}: the server did not start")
            yield Server(proc, match.group(1), int(match.group(2)), cwd)
        finally:
            stop(proc, kill=kill)


def stop(proc: subprocess.Popen[str], *, kill: bool = False) -> None:
    if kill:
        proc.kill()
    else:
        proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def status_kib(pid: int, field: str) -> int:
    """A memory figure of /proc/PID/status in KiB (VmRSS: now; VmHWM: the peak); 0 if absent."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"{field}:\s+(\d+) kB", status)
    return int(match.group(1)) if match else 0


def rss_mib(pid: int) -> float:
    return status_kib(pid, "VmRSS") / 1024


def peak_kib(pid: int) -> int:
    return status_kib(pid, "VmHWM")


def otpsim_command() -> list[str]:
    """This interpreter's ``otpsim`` script, or ``python -m otpsim``."""
    script = Path(sys.executable).with_name("otpsim")
    return [str(script)] if script.exists() else [sys.executable, "-m", "otpsim"]


def put_scenario(base: str, body: bytes, timeout: float) -> tuple[int, float]:
    """``PUT /_sim/scenario``: (status, seconds it took)."""
    request = urllib.request.Request(base + "/_sim/scenario", data=body, method="PUT")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status, time.perf_counter() - started


# -- in-process callback figures ------------------------------------------------------------


def quiet_banner() -> None:
    """Silence otpsim's per-drop log lines and print which otpsim is measured."""
    import otpsim

    logging.getLogger("otpsim").setLevel(logging.ERROR)  # one line per drop is no figure
    print(f"otpsim {otpsim.__version__} from {otpsim.__file__}")


@asynccontextmanager
async def healthy_receiver() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A callback receiver on 127.0.0.1 that answers 204: (its hook URL, set on arrival)."""
    from aiohttp import web

    arrived = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        arrived.set()
        return web.Response(status=204)

    receiver_app = web.Application()
    receiver_app.router.add_post("/hook", hook)
    receiver = web.AppRunner(receiver_app, access_log=None)
    await receiver.setup()
    await web.TCPSite(receiver, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{receiver.addresses[0][1]}/hook", arrived
    finally:
        await receiver.cleanup()


@asynccontextmanager
async def running_app() -> AsyncIterator[tuple[Any, Any]]:
    """otpsim's app with default settings (no shutdown grace), its dispatcher started:
    (simulator, dispatcher)."""
    from aiohttp import web

    from otpsim.config import Settings
    from otpsim.server.app import create_app
    from otpsim.server.keys import DISPATCHER, SIM

    app = create_app(Settings(shutdown_grace=0.0))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()  # starts the dispatcher
    try:
        yield app[SIM], app[DISPATCHER]
    finally:
        await runner.cleanup()


async def arrival_seconds(arrived: asyncio.Event, started: float, cap: float) -> float | None:
    """Seconds from ``started`` (perf_counter) until ``arrived``; None past ``cap``."""
    try:
        await asyncio.wait_for(arrived.wait(), timeout=cap)
    except TimeoutError:
        return None
    return time.perf_counter() - started


def latency_text(latency: float | None, cap: float) -> str:
    return f"> {cap:g} s (not delivered)" if latency is None else f"{latency * 1000:.0f} ms"
