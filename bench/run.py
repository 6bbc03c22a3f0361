"""otpsim's benchmark: measured against the framework's own ceiling, in one run.

    python bench/run.py            # the full run (a few minutes)
    python bench/run.py --smoke    # seconds: checks that every case works (CI)

Each server runs pinned to CPU 0 and its load to CPU 1 (when the machine has two), on
127.0.0.1 only. HTTP load comes from ``wrk`` (Debian's package); the full flow, the
websocket push latency and the memory case are driven from Python. The table gives
req/s, p50/p99 latency, the server's RSS, and the ratio to the ceiling (a bare aiohttp
handler returning a fixed 201) or to the memory store. Targets are printed beside the
figures; nothing here fails on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BODY = '{"phoneNumber": "+33612345678"}'
KEY = "bench"


@dataclass
class Row:
    case: str
    rate: float | None = None  # requests (or flows, or messages) per second
    unit: str = "req/s"
    p50_ms: float | None = None
    p99_ms: float | None = None
    rss_mb: float | None = None
    ratio: str = ""
    target: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# -- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpu: int, command: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > cpu:
        return ["taskset", "-c", str(cpu), *command]
    return command


def wait_ready(url: str, timeout: float = 20) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answered: it is up
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Server:
    def __init__(
        self,
        command: list[str],
        ready_path: str,
        port: int,
        *,
        env: dict[str, str] | None = None,
        timeout: float = 20,
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        # stderr to a file, not a pipe: a server logging at info would fill a pipe nobody
        # reads and stall.
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by stop())
        self.proc = subprocess.Popen(
            pinned(0, command), stdout=subprocess.DEVNULL, stderr=self.log, text=True, env=env
        )
        try:
            wait_ready(self.url + ready_path, timeout)
        except OSError:
            self.stop()
            raise RuntimeError(f"server did not start: {' '.join(command)}") from None

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        """User + system CPU the server has used so far (its threads included)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def otpsim(*args: str) -> Server:
    port = free_port()
    # The defaults a user runs (the info log level included), stderr to a file.
    command = [sys.executable, "-m", "otpsim", "serve", "--port", str(port), *args]  # fmt: skip
    return Server(command, "/_sim/health", port)


def prefilled(count: int, *args: str) -> Server:
    """otpsim with its store already holding ``count`` OTPs and messages (bench/prefilled.py):
    at the default cap, every request evicts the oldest."""
    port = free_port()
    command = [sys.executable, str(HERE / "prefilled.py"), str(count), "--port", str(port),
               *args]  # fmt: skip
    return Server(command, "/_sim/health", port, timeout=180)


def lean_app(*args: str) -> Server:
    port = free_port()
    return Server([sys.executable, str(HERE / "lean.py"), str(port), *args], "/", port)


def ceiling(*args: str) -> Server:
    port = free_port()
    return Server([sys.executable, str(HERE / "ceiling.py"), str(port), *args], "/", port)


# -- wrk -----------------------------------------------------------------------------------


def wrk(url: str, method: str, body: str | None, seconds: float, connections: int) -> Row:
    lua = ["wrk.method = " + json.dumps(method), 'wrk.headers["X-API-KEY"] = "bench"']
    if body is not None:
        lua += [
            "wrk.body = " + json.dumps(body),
            'wrk.headers["Content-Type"] = "application/json"',
        ]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lua) + "\n")
    command = pinned(1, ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                         "--latency", "-s", script.name, url])  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    os.unlink(script.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Row(
        case="",
        rate=rate,
        p50_ms=_ms(re.search(r"\s50%\s+([\d.]+\w+)", out)),
        p99_ms=_ms(re.search(r"\s99%\s+([\d.]+\w+)", out)),
        note=f"{errors.group(1)} non-2xx" if errors else "",
    )


def _ms(match: re.Match[str] | None) -> float | None:
    """wrk's ``812.00us`` / ``1.23ms`` / ``1.02s`` in milliseconds."""
    if match is None:
        return None
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", match.group(1)).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def create_one(url: str) -> str:
    import urllib.request

    request = urllib.request.Request(
        url + "/otp", data=BODY.encode(), method="POST",
        headers={"X-API-KEY": KEY, "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request) as answer:
        return str(json.load(answer)["otpId"])


# -- Python-driven cases -------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _flows(url: str, seconds: float, concurrency: int) -> tuple[int, list[float], float]:
    import aiohttp

    done, latencies = 0, []
    headers = {"X-API-KEY": KEY}
    deadline = time.monotonic() + seconds
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    wall_before = time.monotonic()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                began = time.perf_counter()
                async with http.post(url + "/otp", data=BODY, headers=headers) as r:
                    otp = await r.json()
                async with http.get(
                    url + "/_sim/messages/latest", params={"otpId": otp["otpId"]}
                ) as r:
                    pin = (await r.json())["pin"]
                async with http.post(
                    url + f"/otp/{otp['otpId']}", json={"pin": pin}, headers=headers
                ) as r:
                    assert (await r.json())["status"] == "VERIFIED"
                latencies.append((time.perf_counter() - began) * 1000)
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic() - wall_before
    cpu = (
        cpu_after.ru_utime - cpu_before.ru_utime + cpu_after.ru_stime - cpu_before.ru_stime
    ) / wall
    return done, latencies, cpu


def full_flow(url: str, seconds: float, concurrency: int) -> Row:
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    started = time.monotonic()
    done, latencies, cpu = asyncio.run(_flows(url, seconds, concurrency))
    elapsed = time.monotonic() - started
    note = f"loader CPU {cpu:.0%}" + (" (saturated: a lower bound)" if cpu > 0.9 else "")
    return Row(
        "", done / elapsed, "flows/s", _pct(latencies, 0.5), _pct(latencies, 0.99), note=note
    )


async def _push(url: str, clients: int, messages: int) -> list[float]:
    import aiohttp
    import websockets

    sent: dict[str, float] = {}
    arrived: list[tuple[str, float]] = []  # (otpId, when): the push may beat the answer
    ws_url = "ws" + url.removeprefix("http") + "/_sim/ws"
    sockets = [await websockets.connect(ws_url, max_size=2**22) for _ in range(clients)]
    for ws in sockets:
        await ws.recv()  # hello

    async def listen(ws: Any, want: int) -> None:
        got = 0
        while got < want:
            event = json.loads(await ws.recv())
            if event["type"] == "message.delivered":
                arrived.append((event["data"]["otpId"], time.perf_counter()))
                got += 1

    listeners = [asyncio.create_task(listen(ws, messages)) for ws in sockets]
    async with aiohttp.ClientSession() as http:
        for _ in range(messages):
            began = time.perf_counter()
            async with http.post(url + "/otp", data=BODY, headers={"X-API-KEY": KEY}) as r:
                otp = await r.json()
            sent[otp["otpId"]] = began
            await asyncio.sleep(0.005)
    await asyncio.wait_for(asyncio.gather(*listeners), timeout=60)
    for ws in sockets:
        await ws.close()
    return [(when - sent[otp_id]) * 1000 for otp_id, when in arrived]


def push_latency(url: str, clients: int, messages: int) -> Row:
    latencies = asyncio.run(_push(url, clients, messages))
    return Row("", None, "", _pct(latencies, 0.5), _pct(latencies, 0.99),
               note=f"{len(latencies)} deliveries to {clients} clients")  # fmt: skip


def rss_after(count: int) -> Row:
    code = f"""
import asyncio, resource
from otpsim.clock import Clock
from otpsim.config import Settings
from otpsim.engine.simulator import Simulator

async def main():
    sim = Simulator(Settings(max_messages={count + 1}), clock=Clock(start=0.0, frozen=True))
    body = {{"phoneNumber": "+33612345678"}}
    for _ in range({count}):
        await sim.create_otp(body, account="bench")
    assert len(sim.list_otps(limit=1)) == 1
asyncio.run(main())
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rss = int(done.stdout.split()[-1]) / 1024
    rate = count / (time.monotonic() - started)
    return Row("", rate, "OTPs/s", rss_mb=rss, note=f"{count:,} OTPs kept in memory")


# -- the run -------------------------------------------------------------------------------


def ratio(row: Row, base: Row, name: str) -> str:
    """``0.26 x ceiling``: a row's rate over another's."""
    if not row.rate or not base.rate:
        return ""
    return f"{row.rate / base.rate:.2f} x {name}"


def measure(smoke: bool) -> list[Row]:
    seconds = 1 if smoke else 10
    connections = 10 if smoke else 50
    rows: list[Row] = []

    def post_once(server: Server, case: str) -> Row:
        """POST /otp load on a server started for this row alone; stops it."""
        try:
            row = wrk(server.url + "/otp", "POST", BODY, seconds, connections)
            row.case, row.rss_mb = case, server.rss_mb()
        finally:
            server.stop()
        return row

    base = post_once(ceiling(), "ceiling: bare aiohttp POST /otp")
    rows.append(base)
    parsing = post_once(
        ceiling("--parse"), "reference: bare aiohttp that reads and parses the body"
    )
    parsing.ratio = ratio(parsing, base, "ceiling")
    rows.append(parsing)
    lean = post_once(
        lean_app(), "reference: lean aiohttp app doing the contract's per-request work"
    )
    lean.ratio = ratio(lean, base, "ceiling")
    rows.append(lean)
    stateful = post_once(
        lean_app("--store"), "reference: the lean app, also keeping OTP and message"
    )
    stateful.ratio = ratio(stateful, base, "ceiling")
    rows.append(stateful)

    sim = otpsim()
    try:
        post = wrk(sim.url + "/otp", "POST", BODY, seconds, connections)
        post.case, post.rss_mb = "otpsim POST /otp (memory)", sim.rss_mb()
        post.ratio = f"{ratio(post, base, 'ceiling')}; {ratio(post, stateful, 'lean+store')}"
        post.target = ">= 0.45 x ceiling (aim 0.5); p99 < 15 ms"
        rows.append(post)
        get = wrk(sim.url + f"/otp/{create_one(sim.url)}", "GET", None, seconds, connections)
        get.case, get.rss_mb = "otpsim GET /otp/{id}", sim.rss_mb()
        get.ratio = ratio(get, base, "ceiling")
        rows.append(get)
        flow = full_flow(sim.url, seconds, connections)
        flow.case, flow.rss_mb, flow.target = (
            "otpsim full flow (create, read PIN, verify)",
            sim.rss_mb(),
            ">= 1,500 flows/s",
        )
        rows.append(flow)
        push = push_latency(sim.url, 20 if not smoke else 5, 300 if not smoke else 20)
        push.case, push.target = (
            "otpsim inbox push (create -> ws event)",
            "p99 < 50 ms at 20 clients",
        )
        rows.append(push)
    finally:
        sim.stop()

    # The steady state: the store at its retention cap (100,000 by default; 2,000 in a
    # smoke run), so that each insert evicts the oldest OTP and message.
    cap = ["--max-messages", "2000"] if smoke else []
    full = post_once(
        prefilled(2000 if smoke else 100_000, *cap), "otpsim POST /otp at the cap (memory)"
    )
    full.ratio = ratio(full, post, "young")
    full.target = ">= 0.9 x young"
    rows.append(full)

    with tempfile.TemporaryDirectory() as folder:
        row = post_once(otpsim("--db", str(Path(folder) / "bench.db")), "otpsim POST /otp (sqlite)")
        row.ratio = ratio(row, post, "memory")
        row.target = ">= 0.5 x memory"
        rows.append(row)
        path = str(Path(folder) / "full.db")
        at_cap = post_once(
            prefilled(2000 if smoke else 100_000, "--db", path, *cap),
            "otpsim POST /otp at the cap (sqlite)",
        )
        at_cap.ratio = ratio(at_cap, row, "young sqlite")
        at_cap.target = ">= 0.9 x young sqlite"
        rows.append(at_cap)

    count = 20_000 if smoke else 1_000_000
    row = rss_after(count)
    row.case, row.target = f"RSS after {count:,} OTPs (in-process)", "< 1 GiB for 1M"
    rows.append(row)
    return rows


def table(rows: list[Row]) -> str:
    head = ["case", "rate", "p50 ms", "p99 ms", "RSS MB", "ratio", "target", "note"]
    body = [
        [
            r.case,
            "" if r.rate is None else f"{r.rate:,.0f} {r.unit}",
            "" if r.p50_ms is None else f"{r.p50_ms:.2f}",
            "" if r.p99_ms is None else f"{r.p99_ms:.2f}",
            "" if r.rss_mb is None else f"{r.rss_mb:.0f}",
            r.ratio, r.target, r.note,
        ]
        for r in rows
    ]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def cpu_model() -> str:
    info = Path("/proc/cpuinfo")
    if not info.exists() or "model name" not in info.read_text():
        return "?"
    return info.read_text().split("model name")[1].split("\n")[0].strip(": \t")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="seconds, not minutes: does it all work?"
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("bench: wrk is missing (apt-get install wrk)", file=sys.stderr)
        return 2
    started = time.monotonic()
    rows = measure(args.smoke)
    cpu = (
        Path("/proc/cpuinfo").read_text().split("model name")[1].split("\n")[0].strip(": \t")
        if Path("/proc/cpuinfo").exists()
        else "?"
    )
    print(f"otpsim benchmark ({'smoke' if args.smoke else 'full'}), {os.cpu_count()} CPUs ({cpu}), "
          f"Python {sys.version.split()[0]}, {time.monotonic() - started:.0f} s")  # fmt: skip
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
