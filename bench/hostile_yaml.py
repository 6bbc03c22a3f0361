"""How fast otpsim refuses the YAML alias bomb of issue #12, and what it costs in memory.

The document is the issue's: 328 bytes, 8 anchors of 9 aliases (~43 million values once
expanded). It is sent to a real ``otpsim serve`` on 127.0.0.1 with ``PUT /_sim/scenario``
(ROUNDS times), and given to ``otpsim validate``; the script prints the time to each
400 / exit 2 and the peak memory (VmHWM of the server before and after; max RSS of the
validate process). Loopback only, bounded (a few seconds).

    python bench/hostile_yaml.py
"""

from __future__ import annotations

import contextlib
import itertools
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from hostile_common import otpsim_command, peak_kib, put_scenario, serve

ROUNDS = 20


def bomb() -> str:
    names = "abcdefgh"
    lines = ["# the billion laughs", "a: &a [" + ",".join(['"lol"'] * 9) + "]"]
    for previous, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def main() -> None:
    doc = bomb()
    body = doc.encode()
    print(f"alias bomb: {len(body)} bytes, {doc.count('&')} anchors of 9 aliases")
    with serve() as server:
        before = peak_kib(server.proc.pid)
        times = []
        for _ in range(ROUNDS):
            status, seconds = put_scenario(server.base, body, timeout=30)
            assert status == 400, status
            times.append(seconds)
        after = peak_kib(server.proc.pid)
    ms = sorted(t * 1000 for t in times)
    print(
        f"PUT /_sim/scenario: 400 in {statistics.median(ms):.1f} ms median, "
        f"{ms[-1]:.1f} ms max ({ROUNDS} requests)"
    )
    print(f"  server peak RSS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after")

    with tempfile.TemporaryDirectory() as folder:  # the server is reaped: counted below
        path = Path(folder) / "bomb.yaml"
        path.write_bytes(body)
        started = time.perf_counter()
        done = subprocess.run(
            [*otpsim_command(), "validate", str(path)], capture_output=True, text=True, timeout=60
        )
        took = time.perf_counter() - started
        assert done.returncode == 2, done.stderr
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, largest child
        print(f"otpsim validate: exit 2 in {took * 1000:.0f} ms (process start included)")
        print(f"  {done.stderr.strip()}")
        print(f"  peak RSS of any child process: {peak / 1024:.1f} MiB")

    from otpsim.errors import OtpsimError
    from otpsim.yamlutil import load_yaml

    started = time.perf_counter()
    for _ in range(ROUNDS):
        with contextlib.suppress(OtpsimError):
            load_yaml(doc, "bomb.yaml")
    print(f"load_yaml alone: refused in {(time.perf_counter() - started) / ROUNDS * 1e6:.0f} µs")


if __name__ == "__main__":
    main()
