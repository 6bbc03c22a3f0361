"""What the official SDK (``smscx-client`` over urllib3) raises for each connection
fault on each endpoint, against a real ``otpsim serve`` on loopback: one table, bounded
(5 endpoints x 5 faults, each call at most a few seconds).

Per case: the exception the SDK call raised (and its cause, for urllib3's
``MaxRetryError``), how many requests the server journaled for that endpoint (the
attempts urllib3 made), and how long the call took. ``hang/0.5`` is a ``fault: hang``
(``hang: 1``) met with ``_request_timeout=0.5``; ``hang/none`` the same rule without a
client timeout (the server closes the connection after ``hang`` seconds).

    .venv/bin/python bench/hostile_sdk_faults.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import smscx_client
import urllib3
from smscx_client.api import oauth_api, otp_api
from smscx_client.model.new_otp_request import NewOtpRequest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support import call, launch, stop

KEY, CLIENT, SECRET, PHONE = "bench-key", "bench-app", "bench-secret", "+33612345678"
HANG = 1
FAULTS = ["reset", "truncated", "garbage", "hang/0.5", "hang/none"]


def describe(exc: BaseException) -> str:
    name = type(exc).__name__
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        reason = exc.reason
        inner = reason.args[1] if isinstance(reason, urllib3.exceptions.ProtocolError) else None
        cause = type(reason).__name__ + (f"({type(inner).__name__})" if inner else "")
        return f"{name}({cause})"
    if isinstance(exc, urllib3.exceptions.ProtocolError) and len(exc.args) > 1:
        return f"{name}({type(exc.args[1]).__name__})"
    return name


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        proc, base = launch(Path(folder), "--host", "127.0.0.1", "--api-key", KEY,
                            "--oauth-client", f"{CLIENT}:{SECRET}", "--max-wait", "5",
                            "--log-level", "warning")  # fmt: skip
        try:
            keyed = otp_api.OtpApi(
                smscx_client.ApiClient(smscx_client.Configuration(host=base, api_key=KEY))
            )
            login = smscx_client.Configuration(host=base, username=CLIENT, password=SECRET)
            oauth = oauth_api.OauthApi(smscx_client.ApiClient(login))

            def case(endpoint: str, fault: str) -> str:
                assert call("POST", f"{base}/_sim/reset")[0] == 200
                otp_id = keyed.new_otp(NewOtpRequest(phone_number=PHONE)).otp_id
                kind, _, timeout = fault.partition("/")
                rule: dict[str, Any] = {"match": CLIENT if endpoint == "token" else PHONE,
                                        "on": endpoint, "fault": kind}  # fmt: skip
                if kind == "hang":
                    rule["hang"] = HANG
                status, body = call("PUT", f"{base}/_sim/scenario", {"network": {"rules": [rule]}})
                assert status == 200, body
                extra: dict[str, Any] = (
                    {"_request_timeout": float(timeout)} if timeout == "0.5" else {}
                )
                new = NewOtpRequest(phone_number=PHONE)
                calls: dict[str, tuple[str, str, Callable[[], Any]]] = {
                    "create": ("POST", "/otp", lambda: keyed.new_otp(new, **extra)),
                    "status": (
                        "GET",
                        f"/otp/{otp_id}",
                        lambda: keyed.get_otp_status(otp_id, **extra),
                    ),
                    "verify": (
                        "POST",
                        f"/otp/{otp_id}",
                        lambda: keyed.verify_otp(otp_id, "1234", **extra),
                    ),
                    "cancel": (
                        "DELETE",
                        f"/otp/{otp_id}",
                        lambda: keyed.cancel_otp(otp_id, **extra),
                    ),
                    "token": ("POST", "/oauth/token", lambda: oauth.get_access_token(**extra)),
                }
                method, path, run = calls[endpoint]

                def journaled() -> int:
                    _, journal = call("GET", f"{base}/_sim/requests?limit=100")
                    wanted = (method, path)
                    return sum(1 for r in journal["requests"] if (r["method"], r["path"]) == wanted)

                before = journaled()
                started = time.monotonic()
                try:
                    run()
                    raised = "no exception"
                except Exception as exc:
                    raised = describe(exc)
                took = time.monotonic() - started
                time.sleep(HANG + 0.3 if kind == "hang" else 0.1)  # held requests end
                call("DELETE", f"{base}/_sim/scenario")
                return f"{raised}, {journaled() - before} attempt(s), {took:.1f} s"

            for endpoint in ["create", "status", "verify", "cancel", "token"]:
                for fault in FAULTS:
                    print(f"{endpoint:7} {fault:10} {case(endpoint, fault)}", flush=True)
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
