"""Accounts' own scenarios against a real ``otpsim serve``: the server's memory (RSS)
before and after one client PUTs large scenarios (800 regex rules, ~64 KB each, near an
attacker's) for many accounts, at the default ``--max-account-rules`` (10,000). Loopback
only, bounded: at most ACCOUNTS PUTs.

Printed: RSS before and after, how many PUTs were accepted and how many refused (1040),
and the worst case it implies without the rule budget (the MiB per scenario times the
default ``--max-account-scenarios`` of 1000).

    .venv/bin/python bench/hostile_account_scenarios.py [MAX_ACCOUNT_RULES]
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request

from hostile_common import rss_mib, serve

ACCOUNTS, RULES = 100, 800


def big_scenario(account: int) -> bytes:
    """800 regex rules, each account's its own (no compiled pattern is shared)."""
    rules = [
        f'    - {{match: {{regex: "^\\\\+33(6|7)[0-9]{{{i % 9 + 1}}}(12|34|56|78)+{i}{account}$"}}, '  # noqa: E501
        "error: 503}\n"
        for i in range(RULES)
    ]
    return ("network:\n  rules:\n" + "".join(rules)).encode()


def put(base: str, account: str, body: bytes) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"{base}/_sim/scenario?account={account}", data=body, method="PUT"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def main() -> None:
    limit = sys.argv[1:2] or []  # e.g. 1000000: as without the budget
    args = ["--max-account-rules", limit[0]] if limit else []
    body = big_scenario(0)
    with serve("--log-level", "warning", *args) as server:
        time.sleep(0.5)
        before = rss_mib(server.proc.pid)
        accepted = refused = 0
        message = ""
        for i in range(ACCOUNTS):
            status, answer = put(server.base, f"acct-{i}", big_scenario(i))
            if status == 200:
                accepted += 1
            else:
                refused += 1
                error = answer.get("error")
                if isinstance(error, dict):
                    message = f"{status} {error.get('code')}: {error.get('message')}"
        after = rss_mib(server.proc.pid)
    each = (after - before) / max(accepted, 1)
    print(f"scenario: {RULES} regex rules, {len(body) / 1024:.0f} KiB; {ACCOUNTS} PUTs")
    print(f"accepted {accepted}, refused {refused} ({message})")
    print(f"RSS before {before:.0f} MiB, after {after:.0f} MiB (+{after - before:.0f} MiB, "
          f"~{each:.1f} MiB per scenario)")  # fmt: skip
    print(f"without the rule budget, 1000 such scenarios: ~{each * 1000 / 1024:.1f} GiB")


if __name__ == "__main__":
    main()
