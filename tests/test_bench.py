"""The benchmark kit works: its smoke mode runs every case and prints every row.

(A smoke run measures nothing worth keeping; figures come from the full run, see
docs/benchmarks.md. Nothing here asserts a speed.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "run.py"
ROWS = [
    "ceiling: bare aiohttp POST /otp",
    "reference: bare aiohttp that reads and parses the body",
    "reference: lean aiohttp app doing the contract's per-request work",
    "reference: the lean app, also keeping OTP and message",
    "otpsim POST /otp (memory)",
    "otpsim GET /otp/{id}",
    "otpsim full flow (create, read PIN, verify)",
    "otpsim inbox push (create -> ws event)",
    "otpsim POST /otp at the cap (memory)",
    "otpsim POST /otp (sqlite)",
    "otpsim POST /otp at the cap (sqlite)",
    "RSS after 20,000 OTPs (in-process)",
]


def test_the_smoke_run_prints_every_row(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("otpsim benchmark (smoke)")
    for row in ROWS:
        matching = [line for line in lines if line.startswith(f"| {row} |")]
        assert matching, row
        cells = [cell.strip() for cell in matching[0].strip("|").split("|")]
        assert any(cell and cell[0].isdigit() for cell in cells[1:5]), matching[0]  # a figure
