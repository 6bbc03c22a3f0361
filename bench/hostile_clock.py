"""How long a clock jump holds ``POST /_sim/clock`` now that it waits for the callback
attempts it makes due: one figure set, on loopback only, bounded in count and time.

A real ``otpsim serve`` (frozen clock, no batch window, --callback-timeout 2) gets
OTPs whose expiries fall at distinct times within one jump, each with its callback:

* black hole: 50 OTPs to a receiver that accepts connections and never answers. The
  jump waits at most --callback-timeout in all (unbounded, it would be 50 x 2 s); a
  ``POST /otp`` from another client during the held jump is timed too.
* healthy: 200 OTPs to a receiver answering 204 at once: what waiting for each attempt
  in due order costs a jump, per attempt.

    .venv/bin/python bench/hostile_clock.py
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
import urllib.request
from typing import Any

from hostile_common import quiet_banner, serve

TIMEOUT = 2.0  # --callback-timeout
BLACK_HOLE_OTPS, HEALTHY_OTPS = 50, 200
KEY = {"X-API-KEY": "bench", "Content-Type": "application/json"}


def call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or KEY)
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


class Quick(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def otps(base: str, hook: str, count: int) -> None:
    for i in range(count):  # ttl 60, 61, ...: each expiry its own time, its own batch
        body = {"phoneNumber": "+33612345678", "ttl": 60 + i, "otpCallbackUrl": hook}
        call("POST", f"{base}/otp", body)


def timed_jump(base: str) -> float:
    started = time.perf_counter()
    call("POST", f"{base}/_sim/clock", {"advance": 3600})
    return time.perf_counter() - started


def attempts(base: str) -> int:
    log = call("GET", f"{base}/_sim/callbacks?limit=1000")["callbacks"]
    return sum(len(d["attempts"]) for d in log)


def main() -> None:
    quiet_banner()
    flags = ("--clock-frozen", "true", "--callback-batch-window", "0")
    flags += ("--callback-timeout", str(TIMEOUT), "--callback-concurrency-per-receiver", "8")

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(1024)  # never accepted: every request waits for an answer that never comes
    with serve(*flags) as server:
        otps(server.base, f"http://127.0.0.1:{hole.getsockname()[1]}/hook", BLACK_HOLE_OTPS)
        other: list[float] = []

        def meanwhile() -> None:
            time.sleep(0.5)  # the jump is now held on the black hole
            started = time.perf_counter()
            call("POST", f"{server.base}/otp", {"phoneNumber": "+33612345678"},
                 {**KEY, "X-API-KEY": "someone-else"})  # fmt: skip
            other.append(time.perf_counter() - started)

        side = threading.Thread(target=meanwhile)
        side.start()
        took = timed_jump(server.base)
        side.join()
        print(
            f"black hole: {BLACK_HOLE_OTPS} attempts due in one jump, --callback-timeout "
            f"{TIMEOUT:g} s: POST /_sim/clock answered in {took:.2f} s "
            f"(unbounded: >= {BLACK_HOLE_OTPS * TIMEOUT:g} s); another client's POST /otp "
            f"during the held jump: {other[0] * 1000:.0f} ms"
        )
    hole.close()

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quick)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    with serve(*flags) as server:
        otps(server.base, f"http://127.0.0.1:{receiver.server_address[1]}/hook", HEALTHY_OTPS)
        took = timed_jump(server.base)
        made = attempts(server.base)  # read right after the answer
        print(
            f"healthy receiver: {HEALTHY_OTPS} attempts due in one jump: POST /_sim/clock "
            f"answered in {took * 1000:.0f} ms ({took / HEALTHY_OTPS * 1000:.2f} ms per "
            f"attempt), {made} of them already in the callback log"
        )
    receiver.shutdown()
    receiver.server_close()


if __name__ == "__main__":
    main()
