"""How otpsim refuses round 2's text bombs: aliases of one long string, and templates
that multiply a list of a long string then print it.

1. The attacker's 60 KB ``PUT /_sim/scenario`` body (a 60,000-character string aliased
   81,110 times under ``description``: ~4.9 GB once printed) is sent ROUNDS times to a
   real ``otpsim serve`` on 127.0.0.1 while another thread polls ``/_sim/health``; the
   script prints the time to each 400, the slowest health answer meanwhile, and the
   server's peak RSS (VmHWM) before and after.
2. The same shape at 900,000 characters (a ~1 MiB file, ~100 GB printed), parsed
   in-process as ``otpsim validate`` would.
3. The template ``{{ ([('x' * 99999)] * 99999) | string }}`` (10 GB once printed),
   rendered in-process.

Loopback only, bounded (a few seconds).

    python bench/hostile_yaml_text.py
"""

from __future__ import annotations

import statistics
import threading
import time
import urllib.request

from hostile_common import peak_kib, put_scenario, serve

ROUNDS = 10


def text_bomb(strlen: int, last: int = 7) -> str:
    s = "x" * strlen

    def ten(name: str) -> str:
        return "[" + ",".join([f"*{name}"] * 10) + "]"

    tail = ", [" + ",".join(["*d"] * last) + "]"
    return (
        f'name: &s "{s}"\n'
        f"description: [&a {ten('s')}, &b {ten('a')}, &c {ten('b')}, &d {ten('c')}{tail}]\n"
        "network: {rules: []}\n"
    )


def poll_health(base: str, stop: threading.Event, worst: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        with urllib.request.urlopen(base + "/_sim/health", timeout=30) as response:
            response.read()
        worst[0] = max(worst[0], time.perf_counter() - started)
        time.sleep(0.005)


def served(body: bytes) -> None:
    with serve() as server:
        base = server.base
        before = peak_kib(server.proc.pid)
        stop, worst = threading.Event(), [0.0]
        poller = threading.Thread(target=poll_health, args=(base, stop, worst))
        poller.start()
        times = []
        try:
            for _ in range(ROUNDS):
                status, seconds = put_scenario(base, body, timeout=60)
                assert status == 400, status
                times.append(seconds)
        finally:
            stop.set()
            poller.join()
        after = peak_kib(server.proc.pid)
    ms = sorted(t * 1000 for t in times)
    print(
        f"PUT /_sim/scenario: 400 in {statistics.median(ms):.1f} ms median, "
        f"{ms[-1]:.1f} ms max ({ROUNDS} requests); slowest /_sim/health meanwhile "
        f"{worst[0] * 1000:.1f} ms"
    )
    print(f"  server peak RSS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after")


def main() -> None:
    from otpsim.errors import OtpsimError
    from otpsim.scenario.model import parse_scenario
    from otpsim.scenario.templates import render

    body = text_bomb(60_000).encode()
    print(f"1. text bomb: {len(body):,} bytes, 81,110 aliases of a 60,000-character string")
    served(body)

    doc = text_bomb(900_000)
    print(f"2. text bomb: {len(doc.encode()):,} bytes, 81,110 aliases of 900,000 characters")
    started = time.perf_counter()
    try:
        parse_scenario(doc, "bomb.yaml")
        raise SystemExit("accepted")
    except OtpsimError as exc:
        print(f"  parse_scenario refused in {(time.perf_counter() - started) * 1000:.1f} ms")
        print(f"  {exc}")

    template = "{{ ([('x' * 99999)] * 99999) | string }}"
    print(f"3. template: {template}")
    started = time.perf_counter()
    try:
        render(template, {})
        raise SystemExit("rendered")
    except Exception as exc:  # the refusal is what is measured
        took = (time.perf_counter() - started) * 1000
        print(f"  render refused in {took:.2f} ms: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
