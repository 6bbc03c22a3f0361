"""What users of a test fake feel: start-up, the CLI, the pytest plugin, latency, memory.

    python bench/user.py            # about a minute
    python bench/user.py --quick    # fewer repetitions (CI smoke)

Prints one line per figure with its target. All on 127.0.0.1; WireMock and Prism are
measured only when their commands are installed (``npm i wiremock
@stoplight/prism-cli`` in a folder, then ``--npm-bin FOLDER/node_modules/.bin``);
otherwise their lines say "not installed".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from hostile_common import stop  # noqa: E402  (bench/ is not a package)
from run import _flows, _pct, free_port, otpsim  # noqa: E402

PY = sys.executable


def start_to_answer(command: list[str], url: str, timeout: float = 60) -> float:
    """Seconds from starting ``command`` to the first answer (any HTTP status) at ``url``."""
    began = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1):
                    break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.perf_counter() - began > timeout or proc.poll() is not None:
                    raise RuntimeError(f"no answer from {' '.join(command)}") from None
                time.sleep(0.005)
        return time.perf_counter() - began
    finally:
        stop(proc)


def median_of(times: int, measure: object) -> float:
    return statistics.median(measure() for _ in range(times))  # type: ignore[operator]


def run_seconds(command: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - began


def plugin_import_ms() -> float:
    """Importing the plugin in a process that has pytest loaded (what a pytest run pays)."""
    code = (
        "import time, pytest; t = time.perf_counter(); import otpsim.pytest_plugin; "
        "print((time.perf_counter() - t) * 1000)"
    )
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout)


def fixture_cost_ms(tests: int) -> float:
    """The plugin's per-test work (Controller.fresh and the failure check), in-process."""
    from otpsim.testing import Controller

    controller = Controller()
    controller.start()
    try:
        for _ in range(20):
            controller.fresh()
        began = time.perf_counter()
        for _ in range(tests):
            controller.fresh()
            controller.failures()
        return (time.perf_counter() - began) / tests * 1000
    finally:
        controller.stop()


def pytest_session(tests: int, fixture: bool) -> float:
    with tempfile.TemporaryDirectory() as folder:
        arg = "otpsim" if fixture else ""
        body = "\n".join(f"def test_{n}({arg}):\n    pass\n" for n in range(tests))
        Path(folder, "test_many.py").write_text(body)
        Path(folder, "pytest.ini").write_text("[pytest]\n")
        command = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", folder]
        return run_seconds(command)


def compiling_note() -> str:
    """Whether each start compiles otpsim's sources (no byte-code cache and none may be
    written: an editable install under PYTHONDONTWRITEBYTECODE); ``pip install .``
    leaves the cache, and ``bench/start.py`` measures both."""
    import otpsim

    folder = Path(otpsim.__file__).parent
    if os.environ.get("PYTHONDONTWRITEBYTECODE") and not any(folder.rglob("*.pyc")):
        return " (each start compiles otpsim: PYTHONDONTWRITEBYTECODE, no __pycache__)"
    return ""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--npm-bin", default=None, help="node_modules/.bin with wiremock, prism")
    args = parser.parse_args()
    times = 3 if args.quick else 10
    lines: list[tuple[str, str, str]] = []

    def say(what: str, figure: str, target: str = "") -> None:
        lines.append((what, figure, target))
        print(f"{what:<52} {figure:>22}  {target}", flush=True)

    def serve_once() -> float:
        port = free_port()
        command = [PY, "-m", "otpsim", "serve", "--port", str(port)]
        return start_to_answer(command, f"http://127.0.0.1:{port}/_sim/health")

    say(
        "otpsim serve -> healthy (median)",
        f"{median_of(times, serve_once) * 1000:.0f} ms",
        "< 500 ms" + compiling_note(),
    )
    help_s = median_of(times, lambda: run_seconds([PY, "-m", "otpsim", "--help"]))
    bare = median_of(times, lambda: run_seconds([PY, "-c", "pass"]))
    say(
        "otpsim --help (median)",
        f"{help_s * 1000:.0f} ms",
        f"< 150 ms (python -c pass: {bare * 1000:.0f} ms)",
    )
    say(
        "import otpsim.pytest_plugin (pytest loaded)",
        f"{median_of(times, plugin_import_ms):.1f} ms",
        "< 50 ms",
    )
    tests = 50 if args.quick else 200
    say(
        "otpsim fixture's own work per test (in-process)",
        f"{fixture_cost_ms(tests):.2f} ms",
        "< 2 ms",
    )
    plain = median_of(3, lambda: pytest_session(tests, False))
    with_fixture = median_of(3, lambda: pytest_session(tests, True))
    per_test = (with_fixture - plain) / tests * 1000
    say(
        f"pytest session of {tests} trivial tests",
        f"{plain:.2f} s / {with_fixture:.2f} s",
        "without / with the fixture",
    )
    say("  ... per-test overhead (incl. starting the simulator)", f"{per_test:.2f} ms", "< 2 ms")

    server = otpsim()
    try:
        say("RSS idle", f"{rss_mb(server.proc.pid):.0f} MB")
        seconds = 2 if args.quick else 5
        for clients in (1, 10):
            done, latencies, _ = asyncio.run(_flows(server.url, seconds, clients))
            say(
                f"full flow latency, {clients} client(s): p50 / p99",
                f"{_pct(latencies, 0.5):.2f} / {_pct(latencies, 0.99):.2f} ms",
                f"{done / seconds:,.0f} flows/s",
            )
    finally:
        server.stop()
    count = 20_000 if args.quick else 100_000
    code = (
        "import asyncio, resource\nfrom otpsim.clock import Clock\n"
        "from otpsim.config import Settings\n"
        "from otpsim.engine.simulator import Simulator\n"
        "async def main():\n    sim = Simulator(Settings(), clock=Clock(start=0.0, frozen=True))\n"
        f"    for _ in range({count}):\n"
        "        await sim.create_otp({'phoneNumber': '+33612345678'}, account='bench')\n"
        "asyncio.run(main())\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True)
    say(f"RSS at {count:,} OTPs (in-process, peak)", f"{int(done.stdout) / 1024:.0f} MB")

    search = args.npm_bin or os.environ.get("PATH")
    spec = str(HERE.parent / "otpsim" / "openapi.yaml")
    for name, tool, flags in (
        ("WireMock", "wiremock", lambda port: ["--port", str(port)]),
        ("Prism", "prism", lambda port: ["mock", "-p", str(port), spec]),
    ):
        found = shutil.which(tool, path=search)
        if found is None:
            say(f"{name} start -> first answer", "not installed")
            continue

        def once(found: str = found, flags: object = flags) -> float:
            port = free_port()
            command = [found, *flags(port)]  # type: ignore[operator]
            return start_to_answer(command, f"http://127.0.0.1:{port}/")

        say(f"{name} start -> first answer (median of 3)", f"{median_of(3, once) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
