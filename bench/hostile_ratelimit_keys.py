"""CPU per ``RateLimiter.hit`` when more credentials call within one window than the
table keeps (``MAX_KEYS``, 10,000): each new one evicts the least recently counted.

    python bench/hostile_ratelimit_keys.py [--keys 20000] [--hits 100000]

Prints microseconds per hit (``time.process_time``), in-process, bounded, no network.
"""

from __future__ import annotations

import argparse
import time

from otpsim.clock import Clock
from otpsim.engine.ratelimit import RateLimiter


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--hits", type=int, default=100_000)
    args = parser.parse_args()
    limiter = RateLimiter(Clock(start=0.0, frozen=True), limit=None, window=60)
    keys = [f"account:{i}" for i in range(args.keys)]
    for key in keys:  # the table full, and in use
        limiter.hit(key)
    started = time.process_time()
    for i in range(args.hits):
        limiter.hit(keys[i % len(keys)])
    per_hit = (time.process_time() - started) / args.hits * 1e6
    print(f"{per_hit:.2f} us per hit ({args.keys} credentials cycling, table of 10,000)")
    started = time.process_time()
    for _ in range(args.hits):
        limiter.hit("one-key")
    per_hit = (time.process_time() - started) / args.hits * 1e6
    print(f"{per_hit:.2f} us per hit (one credential)")


if __name__ == "__main__":
    main()
