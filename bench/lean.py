"""The lean ceiling: an aiohttp app doing exactly the contract's per-request work for
``POST /otp``, and nothing else: what otpsim is measured against beside bench/ceiling.py.

    python bench/lean.py PORT [--store]

Per request: read and parse the JSON body, check a credential (X-API-KEY present and
known, or any non-empty one), a request id (``X-Request-Id``), ``X-Response-Time``, the
rate-limit headers, and a ~300-byte 201 from a prebuilt template. With ``--store`` it
also keeps the OTP and its message in bounded dicts (oldest out at 100,000), as a
minimal stateful app would.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from collections import OrderedDict

import orjson
from aiohttp import web

TEMPLATE = (
    '{{"otpId":"{id}","trackId":null,"phoneNumber":"{phone}","countryIso":"FR",'
    '"status":"PENDING","cost":0.05,"parts":1,"maxAttempts":3,"attempts":0,"ttl":300,'
    '"otpCallbackUrl":null,"dateCreated":"{now}","dateExpires":"{expires}"}}'
)
CAP = 100_000


def make_app(store: bool) -> web.Application:
    otps: OrderedDict[str, dict[str, object]] = OrderedDict()
    messages: OrderedDict[str, dict[str, object]] = OrderedDict()
    stamp = [0, "", ""]

    async def create(request: web.Request) -> web.Response:
        started = time.perf_counter()
        key = request.headers.get("X-API-KEY")
        if not key:
            return web.Response(status=401)
        body = orjson.loads(await request.read())
        phone = body.get("phoneNumber")
        if not isinstance(phone, str):
            return web.Response(status=400)
        now = time.time()
        if int(now) != stamp[0]:
            stamp[:] = [
                int(now),
                time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now)),
                time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now + 300)),
            ]
        otp_id = str(uuid.uuid4())
        if store:
            otps[otp_id] = {"phone": phone, "pin": "123456", "account": key, "at": now}
            messages[otp_id] = {"phone": phone, "text": "Your code is 123456", "at": now}
            if len(otps) > CAP:
                otps.popitem(last=False)
                messages.popitem(last=False)
        text = TEMPLATE.format(id=otp_id, phone=phone, now=stamp[1], expires=stamp[2])
        response = web.Response(text=text, status=201, content_type="application/json")
        headers = response.headers
        headers["X-Request-Id"] = f"{random.getrandbits(128):032x}"
        headers["X-RateLimit-Limit"] = "100"
        headers["X-RateLimit-Remaining"] = "99"
        headers["X-RateLimit-Reset"] = "1"
        headers["X-Response-Time"] = f"{(time.perf_counter() - started) * 1000:.3f}ms"
        return response

    app = web.Application()
    app.router.add_post("/otp", create)
    return app


def main() -> None:
    app = make_app("--store" in sys.argv)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
