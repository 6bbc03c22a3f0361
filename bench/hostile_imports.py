"""Import cost of the light entry points: ``import otpsim.pytest_plugin`` and
``otpsim tail --help``, measured with ``python -X importtime`` in fresh processes.

Prints, for each, the best of N runs of the total import time (the sum of every module's
self time), how many modules were imported, how many of them are otpsim's, and which
heavy third-party packages came along. Runs nothing over the network.

    .venv/bin/python bench/hostile_imports.py [runs] [source checkout]

With a source checkout (another worktree), its ``otpsim`` is measured instead: a
before/after comparison on the same machine at the same moment. Times are noisy on a
shared machine; the module counts are not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("aiohttp", "yaml", "jinja2", "phonenumbers", "babel", "prometheus_client", "re2")
CASES = {
    "import otpsim.pytest_plugin": ["-c", "import otpsim.pytest_plugin"],
    "otpsim tail --help": [
        "-c",
        "import sys; sys.argv=['otpsim','tail','--help']; from otpsim.cli import main; main()",
    ],
}


def measure(args: list[str], source: Path) -> tuple[float, int, int, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=source,
    )
    total_us, names = 0, []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line.removeprefix("import time:").split("|")
        total_us += int(self_us)
        names.append(name.strip())
    otpsim = sum(1 for n in names if n == "otpsim" or n.startswith("otpsim."))
    heavy = sorted({n.split(".")[0] for n in names if n.split(".")[0] in HEAVY})
    return total_us / 1000, len(names), otpsim, heavy


def wall_ms(args: list[str], source: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(source)}
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], capture_output=True, env=env, timeout=60, cwd=source)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    source = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).resolve().parents[1])
    print(f"otpsim from {source.resolve()}")
    for title, args in CASES.items():
        results = [measure(args, source.resolve()) for _ in range(runs)]
        best = min(r[0] for r in results)
        _, modules, ours, heavy = results[0]
        wall = min(wall_ms(args, source.resolve()) for _ in range(runs))
        bare = min(wall_ms(["-c", "pass"], source.resolve()) for _ in range(runs))
        print(
            f"{title}: {best:.1f} ms of imports, {wall - bare:.0f} ms wall over a bare "
            f"interpreter (best of {runs}), {modules} modules, "
            f"{ours} of otpsim; heavy: {', '.join(heavy) or 'none'}"
        )


if __name__ == "__main__":
    main()
