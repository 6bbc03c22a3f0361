"""Start to healthy, interleaved: ``otpsim serve`` (defaults) until ``/_sim/health`` answers 200.

    python bench/start.py                                  # this checkout, 10 starts
    python bench/start.py --times 12 old=/work/base new=.  # interleaved A/B, median each
    python bench/start.py --no-pyc old=... new=...         # compile the sources every start

Each spec is ``name=DIR``: a checkout whose ``.venv`` has otpsim installed (editable) from
that DIR; the runs alternate between specs so that the machine's load falls on each alike.
By default each checkout's modules are byte-compiled first (what ``pip install .`` leaves),
so the figure is what a user's start costs; ``--no-pyc`` runs with PYTHONDONTWRITEBYTECODE
and no ``__pycache__`` (every start compiles otpsim's sources, as an editable install in an
environment that sets PYTHONDONTWRITEBYTECODE does). Loopback only; each server is stopped
(SIGTERM) as soon as it answered.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """CPU time the process's threads have run so far (schedstat: nanoseconds)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def start_to_healthy(python: str, env: dict[str, str], timeout: float = 30) -> tuple[float, float]:
    """Seconds from spawning ``otpsim serve`` to the first 200 from ``/_sim/health``,
    and the CPU seconds the server used by then (less moved by the machine's load)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/_sim/health"
    command = [python, "-m", "otpsim", "serve", "--port", str(port)]
    began = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - began, cpu_seconds(proc.pid)
            except (urllib.error.URLError, OSError):
                pass
            if time.perf_counter() - began > timeout or proc.poll() is not None:
                raise RuntimeError(f"no answer from {' '.join(command)}")
            time.sleep(0.002)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", help="name=DIR (default: this checkout)")
    parser.add_argument("--times", type=int, default=10, help="starts per spec (default 10)")
    parser.add_argument("--no-pyc", action="store_true", help="compile the sources every start")
    args = parser.parse_args()
    specs = [s.partition("=")[::2] for s in args.specs] or [("this", str(HERE.parent))]
    env = dict(os.environ)
    pythons = {}
    for name, folder in specs:
        root = Path(folder).resolve()
        pythons[name] = str(root / ".venv" / "bin" / "python")
        for cache in (root / "otpsim").rglob("__pycache__"):
            if args.no_pyc:
                shutil.rmtree(cache)
        if not args.no_pyc:
            subprocess.run(
                [pythons[name], "-m", "compileall", "-q", str(root / "otpsim")], check=True
            )
    if args.no_pyc:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    for name in pythons:  # warm the page cache once, not measured
        start_to_healthy(pythons[name], env)
    runs: dict[str, list[float]] = {name: [] for name in pythons}
    cpu: dict[str, list[float]] = {name: [] for name in pythons}
    for _ in range(args.times):
        for name, python in pythons.items():
            wall, used = start_to_healthy(python, env)
            runs[name].append(wall)
            cpu[name].append(used)
    first = next(iter(runs))
    for name, times in runs.items():
        median = statistics.median(times)
        ratio = median / statistics.median(runs[first])
        spread = f"{min(times) * 1000:.0f}-{max(times) * 1000:.0f}"
        used = statistics.median(cpu[name])
        print(
            f"{name:<8} start to healthy: median {median * 1000:4.0f} ms "
            f"(min-max {spread} ms, n={len(times)}) {ratio:.2f} x {first}; "
            f"server CPU by then {used * 1000:.0f} ms "
            f"({used / statistics.median(cpu[first]):.2f} x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
