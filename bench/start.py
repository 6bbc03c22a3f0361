"""Start to healthy, interleaved: ``otpsim serve`` (defaults) until ``/_sim/health`` answers 200.

    python bench/start.py                                  # this checkout, 10 starts
    python bench/start.py --times 12 old=/work/base new=.  # interleaved A/B, median each
    python bench/start.py --no-pyc old=... new=...         # compile the sources every start
    python bench/start.py --firsts old=... new=...         # and each first request after

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
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from hostile_common import stop  # noqa: E402  (bench/ is not a package)
from run import free_port  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """CPU time the process's threads have run so far (schedstat: nanoseconds)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


# The first request of each kind after start-up, each on the same fresh server (what a
# lazily loaded module would slow): (label, method, path, body).
FIRSTS = (
    ("POST /otp", "POST", "/otp", b'{"phoneNumber": "+33612345678"}'),
    ("GET / (inbox page)", "GET", "/", None),
    ("GET /_sim/api", "GET", "/_sim/api", None),
    ("GET /_sim/metrics", "GET", "/_sim/metrics", None),
    ("PUT /_sim/scenario", "PUT", "/_sim/scenario", b"network:\n  rules: []\n"),
)


def first_requests(base: str) -> dict[str, float]:
    """Seconds each of FIRSTS took, in order, on a server that has only answered health."""
    took = {}
    for label, method, path, body in FIRSTS:
        request = urllib.request.Request(base + path, data=body, method=method)
        request.add_header("X-API-KEY", "bench")
        request.add_header("Content-Type", "application/json")
        began = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
        took[label] = time.perf_counter() - began
    return took


def start_to_healthy(
    python: str, env: dict[str, str], *, firsts: bool = False, timeout: float = 30
) -> dict[str, float]:
    """Seconds from spawning ``otpsim serve`` to the first 200 from ``/_sim/health``
    ("healthy"), the CPU seconds the server used by then ("cpu": less moved by the
    machine's load) and, with ``firsts``, the seconds of each first request after."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [python, "-m", "otpsim", "serve", "--port", str(port)]
    began = time.perf_counter()
    # Run from the checkout's folder: ``-m`` puts the working directory first on sys.path,
    # so another checkout's otpsim there would be the one imported.
    root = Path(python).parents[2]
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=root
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(base + "/_sim/health", timeout=2) as answer:
                    if answer.status == 200:
                        took = {"healthy": time.perf_counter() - began}
                        took["cpu"] = cpu_seconds(proc.pid)
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.perf_counter() - began > timeout or proc.poll() is not None:
                raise RuntimeError(f"no answer from {' '.join(command)}")
            time.sleep(0.002)
        if firsts:
            took.update(first_requests(base))
        return took
    finally:
        stop(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", help="name=DIR (default: this checkout)")
    parser.add_argument("--times", type=int, default=10, help="starts per spec (default 10)")
    parser.add_argument("--no-pyc", action="store_true", help="compile the sources every start")
    parser.add_argument(
        "--firsts", action="store_true", help="also time the first request of each kind"
    )
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
    runs: dict[str, dict[str, list[float]]] = {name: {} for name in pythons}
    for _ in range(args.times):
        for name, python in pythons.items():
            for figure, seconds in start_to_healthy(python, env, firsts=args.firsts).items():
                runs[name].setdefault(figure, []).append(seconds)
    first = next(iter(runs))
    for name, figures in runs.items():
        times, cpu = figures["healthy"], figures["cpu"]
        median = statistics.median(times)
        ratio = median / statistics.median(runs[first]["healthy"])
        spread = f"{min(times) * 1000:.0f}-{max(times) * 1000:.0f}"
        used = statistics.median(cpu)
        print(
            f"{name:<8} start to healthy: median {median * 1000:4.0f} ms "
            f"(min-max {spread} ms, n={len(times)}) {ratio:.2f} x {first}; "
            f"server CPU by then {used * 1000:.0f} ms "
            f"({used / statistics.median(runs[first]['cpu']):.2f} x)"
        )
        for label, *_ in FIRSTS if args.firsts else ():
            took = statistics.median(figures[label]) * 1000
            print(f"{name:<8}   first {label:<22} median {took:6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
